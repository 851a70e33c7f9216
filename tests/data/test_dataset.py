"""mdlcodec.data.dataset: the fixed split, and the chunkwise NaN/Inf check that names the row."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.core.errors import DataError
from mdlcodec.data import check_finite, load_activations, split_index
from mdlcodec.data import dataset as dataset_module
from tests.data.helpers import _matrix


def test_split_index():
    assert [split_index(n, "x") for n in (2, 4, 5, 10, 20000)] == [1, 3, 4, 8, 16000]
    with pytest.raises(DataError, match="at least 2"):
        split_index(1, "x")


def test_check_finite_reads_chunkwise_and_names_the_row(tmp_path, monkeypatch):
    x = _matrix(n=100)
    x[73, 1] = np.inf
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(dataset_module, "CHUNK_BYTES", 64)  # a few rows per chunk
    with pytest.raises(DataError, match=r"contains Inf \(first at row 73, column 1\)"):
        check_finite(load_activations(tmp_path / "x.npy"), "x.npy")
