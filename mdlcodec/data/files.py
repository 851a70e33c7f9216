"""Activation matrices [n, d] from files: .npy (memory-mapped), .npz, .safetensors and .pt.

A file holding several arrays is read as `path:key`; without a key it must hold exactly one 2-D
array. Only .npy is memory-mapped; the other formats are read whole into memory.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from mdlcodec.core.errors import DataError, first_line
from mdlcodec.core.paths import regular_file
from mdlcodec.data.dataset import Dataset, check_finite, check_matrix, split_index

SUFFIXES = (".npy", ".npz", ".safetensors", ".pt")
_KEYED = (".npz", ".safetensors", ".pt")


def parse_file_spec(spec: str | Path) -> tuple[Path, str | None]:
    """Split `path` or `path:key` (key only for .npz, .safetensors, .pt) into (path, key)."""
    path = Path(spec)
    if isinstance(spec, Path) or path.exists() or ":" not in str(spec):
        return path, None
    head, key = str(spec).rsplit(":", 1)
    if Path(head).suffix.lower() in _KEYED and key:
        return Path(head), key
    return path, None


def _choose(shapes: dict[str, tuple], key: str | None, path: Path) -> str:
    """The entry named `key`, or else the only entry, or else the only 2-D entry, of name -> shape."""
    if key is not None:
        if key not in shapes:
            raise DataError(f"{path} has no array '{key}' (it has: {', '.join(sorted(shapes)) or 'none'})")
        return key
    if not shapes:
        raise DataError(f"{path} holds no arrays")
    two_d = [k for k, s in shapes.items() if len(s) == 2]
    if len(shapes) == 1:
        return next(iter(shapes))
    if len(two_d) == 1:
        return two_d[0]
    raise DataError(f"{path} holds {len(shapes)} arrays ({', '.join(sorted(shapes))}); name one as {path}:KEY")


def _torch_to_numpy(t, what: str) -> np.ndarray:
    import torch

    if not isinstance(t, torch.Tensor):
        raise DataError(f"{what} is a {type(t).__name__}, not a tensor")
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    if t.dtype == torch.bool or t.is_complex():
        raise DataError(f"{what} has dtype {t.dtype}; expected a real numeric dtype (float or integer)")
    return t.detach().cpu().contiguous().numpy()


def _read_npy(path: Path) -> np.ndarray:
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(f)
    check_matrix(shape, dtype, str(path))  # before mapping: a 0-row file cannot be memory-mapped
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays[_choose({k: a.shape for k, a in arrays.items()}, key, path)]


def _read_safetensors(path: Path, key: str | None) -> np.ndarray:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        name = _choose(shapes, key, path)
        return _torch_to_numpy(f.get_tensor(name), f"{path}:{name}")


def load_torch_file(path: Path) -> object:
    """What the torch file ``path`` holds, read as untrusted input: torch.load(weights_only=True) on
    the CPU (tensors and plain containers only; no code runs), with the warnings torch prints while
    reading silenced (a pickle of another protocol gets two lines about weights_only before the
    error). Any failure is a ValueError of one line: the object torch refused, or why it could not read."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types (UnpicklingError, RuntimeError, EOFError, OSError)
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = (f"it holds a {found.group(1)} object" if found
                else "not a torch file, or one holding objects other than tensors")
        if "Weights only load failed" not in str(e) and not found:
            what = first_line(e)
        raise ValueError(f"torch.load with weights_only=True refused it: {what}") from None


def _read_pt(path: Path, key: str | None) -> np.ndarray:
    import torch

    obj = load_torch_file(path)
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise DataError(f"{path} holds a dict without tensors")
        name = _choose({k: tuple(t.shape) for k, t in tensors.items()}, key, path)
        return _torch_to_numpy(tensors[name], f"{path}:{name}")
    if key is not None:
        raise DataError(f"{path} holds a single {type(obj).__name__}, not a dict: drop ':{key}'")
    return _torch_to_numpy(obj, str(path))


def load_activations(path: str | Path, key: str | None = None) -> np.ndarray:
    """One whole activation file as a matrix [n, d] of a real numeric dtype (not converted: a
    np.memmap for .npy, so nothing is read yet). `path` may be `path:key` for .npz, .safetensors
    and .pt. Checks existence, format, 2-D shape, dtype and emptiness; not NaN/Inf (use
    check_finite chunkwise). Raises DataError with one line naming the file and the problem."""
    if key is None:
        path, key = parse_file_spec(path)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: unknown file type '{suffix or '(none)'}'; expected one of {', '.join(SUFFIXES)}")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    regular_file(path, error=DataError)  # a FIFO, device or folder: one line, not a read that blocks
    if key is not None and suffix == ".npy":
        raise DataError(f"{path}: a .npy file holds one array; drop ':{key}'")
    what = f"{path}:{key}" if key is not None else str(path)
    try:
        if suffix == ".npy":
            x = _read_npy(path)
        elif suffix == ".npz":
            x = _read_npz(path, key)
        elif suffix == ".safetensors":
            x = _read_safetensors(path, key)
        else:
            x = _read_pt(path, key)
    except DataError:
        raise
    except Exception as e:  # any reader failure (corrupt, truncated, unreadable) becomes one line
        raise DataError(f"cannot read {what}: {first_line(e)}") from None
    check_matrix(x.shape, x.dtype, what)
    return x


def load_activation_dataset(spec: str) -> Dataset:
    """An activation file as a Dataset: float32, NaN/Inf-checked, first rows train, last n // 5
    rows test. A float32 .npy stays memory-mapped; any other dtype is converted in memory."""
    x = load_activations(spec)
    if x.dtype != np.float32:
        x = np.asarray(x, dtype=np.float32)
    check_finite(x, spec)
    n_train = split_index(len(x), spec)
    return Dataset(name=f"{spec} ({n_train} train / {len(x) - n_train} test)", spec=spec,
                   train=x[:n_train], test=x[n_train:])
