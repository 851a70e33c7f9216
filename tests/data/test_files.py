"""mdlcodec.data.files: every file format round-trips and takes the fixed split; several arrays
need a key; .npy stays memory-mapped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from mdlcodec.core.errors import DataError
from mdlcodec.data import load_activations, load_dataset
from tests.data.helpers import _matrix


def _write(fmt: str, path, x: np.ndarray, extra: bool) -> str:
    """Write x in format fmt (with a second 2-D array when extra); return the spec that names x."""
    other = np.ones((2, 2), np.float32)
    if fmt == "npy":
        np.save(path.with_suffix(".npy"), x)
        return str(path.with_suffix(".npy"))
    if fmt == "npz":
        np.savez(path.with_suffix(".npz"), acts=x, **({"other": other} if extra else {}))
        spec = str(path.with_suffix(".npz"))
    elif fmt == "safetensors":
        save_file({"acts": x, **({"other": other} if extra else {})}, str(path.with_suffix(".safetensors")))
        spec = str(path.with_suffix(".safetensors"))
    else:
        obj = {"acts": torch.from_numpy(x), **({"other": torch.from_numpy(other)} if extra else {})}
        torch.save(obj if extra else torch.from_numpy(x), path.with_suffix(".pt"))
        spec = str(path.with_suffix(".pt"))
    return spec + (":acts" if extra else "")


@pytest.mark.parametrize("fmt, extra", [("npy", False)] + [(f, e) for f in ("npz", "safetensors", "pt")
                                                          for e in (False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_formats_round_trip_and_split(tmp_path, fmt, extra, dtype):
    x = _matrix(dtype=dtype)
    ds = load_dataset(_write(fmt, tmp_path / "a", x, extra))
    assert ds.train.dtype == np.float32 and ds.d == 3 and ds.truth is None and ds.image_shape is None
    np.testing.assert_array_equal(ds.train, x[:8].astype(np.float32))
    np.testing.assert_array_equal(ds.test, x[8:].astype(np.float32))


def test_several_arrays_without_key_is_refused(tmp_path):
    np.savez(tmp_path / "two.npz", a=_matrix(), b=_matrix())
    with pytest.raises(DataError, match="name one as"):
        load_dataset(str(tmp_path / "two.npz"))
    np.savez(tmp_path / "one2d.npz", acts=_matrix(), labels=np.arange(10))
    assert load_dataset(str(tmp_path / "one2d.npz")).d == 3  # the only 2-D array is chosen
    with pytest.raises(DataError, match="no array 'zz'"):
        load_dataset(str(tmp_path / "one2d.npz") + ":zz")


def test_npy_stays_memory_mapped(tmp_path):
    np.save(tmp_path / "h.npy", _matrix(dtype=np.float16))
    assert isinstance(load_activations(tmp_path / "h.npy"), np.memmap)  # not converted, not read
    np.save(tmp_path / "f.npy", _matrix())
    ds = load_dataset(str(tmp_path / "f.npy"))
    assert isinstance(ds.train, np.memmap) and isinstance(ds.test, np.memmap)
