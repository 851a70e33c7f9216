"""Activations handed over in memory (a notebook's), as the arrays every other loader gives:

- a torch tensor (any device, any floating dtype: bfloat16 and float16 included) or a numpy array,
  [n, d] or [..., d] (leading dimensions, such as batch and position, are flattened into rows);
- an iterable of such batches (a generator, a DataLoader of tensors), concatenated in order;
- a dataset spec string or a path (a shard folder, a .npy file, ``mnist``, ``toy:...``: load_dataset);
- a Dataset (its own split).

``as_dataset`` splits in-memory rows by the project's fixed rule (split_index: the last n // 5 rows
test); ``as_rows`` gives the rows to fit on and opens nothing (the codec's Codec.fit takes them)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mdlcodec.core.errors import DataError
from mdlcodec.data.dataset import Dataset, check_finite, check_matrix, split_index


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _rows(x: Any, what: str) -> np.ndarray:
    """One tensor or array as float32 [n, d] on the CPU."""
    if _is_tensor(x):
        import torch

        x = x.detach().to("cpu", torch.float32).numpy()
    x = np.asarray(x)
    if x.ndim > 2:
        x = x.reshape(-1, x.shape[-1])
    check_matrix(x.shape, x.dtype, what)
    return np.ascontiguousarray(x, dtype=np.float32)


def _array(activations: Any, what: str) -> np.ndarray | None:
    """In-memory activations as one float32 matrix, or None when they are a spec, a path or a Dataset."""
    if isinstance(activations, (str, Path, Dataset)):
        return None
    if _is_tensor(activations) or isinstance(activations, np.ndarray):
        x = _rows(activations, what)
    elif isinstance(activations, Iterable):
        parts = [_rows(b, f"{what}, batch {i}") for i, b in enumerate(activations)]
        if not parts:
            raise DataError(f"{what}: the iterable gave no batches")
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            raise DataError(f"{what}: the batches have different widths {sorted(widths)}")
        x = np.concatenate(parts)
    else:
        raise DataError(f"{what} is a {type(activations).__name__}; give a tensor, an array, an iterable of "
                        "batches, a Dataset, or a dataset spec or path")
    check_finite(x, what)
    return x


def as_dataset(activations: Any, what: str = "activations") -> Dataset:
    """``activations`` (this module's docstring) as a Dataset: in-memory rows split by split_index."""
    if isinstance(activations, Dataset):
        return activations
    x = _array(activations, what)
    if x is None:
        from mdlcodec.data.spec import load_dataset

        return load_dataset(str(activations))
    n_train = split_index(len(x), what)
    return Dataset(name=f"{what} in memory ({n_train} train / {len(x) - n_train} test)", spec="<in memory>",
                   train=x[:n_train], test=x[n_train:])


def as_rows(activations: Any, what: str = "activations"):
    """``activations`` as rows to fit on, opening nothing: in-memory rows all of them (float32
    [n, d]), a Dataset's training split; a matrix with a shape (np.ndarray, np.memmap, ShardedRows)
    is returned as it is. A spec or path is refused (load it with load_dataset first)."""
    if isinstance(activations, Dataset):
        return activations.train
    if isinstance(activations, (str, Path)):
        raise DataError(f"{what}: {str(activations)!r} is a name, not rows; load it first "
                        "(data.load_dataset(spec).train)")
    if isinstance(activations, np.ndarray) and activations.ndim == 2:
        return activations  # as it is: a np.memmap stays on disk (the codec checks it chunk by chunk)
    if not _is_tensor(activations) and not isinstance(activations, np.ndarray) and hasattr(activations, "shape") \
            and hasattr(activations, "__getitem__"):
        return activations
    return _array(activations, what)
