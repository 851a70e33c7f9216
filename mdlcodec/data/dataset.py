"""The Dataset record every loader returns, the project's fixed train/test split, and the checks
that every array goes through (shape, dtype, emptiness, NaN/Inf), done chunkwise so that a
memory-mapped file larger than memory is checked in bounded memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mdlcodec.core.errors import DataError

TEST_FRACTION_DIVISOR = 5  # the last n // 5 rows (20%) are test, at least one
CHUNK_BYTES = 64 << 20      # rows per chunk in chunkwise passes: about this many bytes


@dataclass
class Dataset:
    """Activations split into train [n_train, d] and test [n_test, d] float32 (a np.memmap view for
    float32 .npy files). `image_shape` is (28, 28) for MNIST, else None; `truth` is the ground
    truth of synthetic data (a data.toy.ToyTruth, which builds on this module: typed Any here so
    that the two modules do not import each other), else None."""

    name: str
    spec: str
    train: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, int] | None = None
    truth: Any = None

    @property
    def d(self) -> int:
        """Width of one sample (number of columns)."""
        return int(self.train.shape[1])


def split_index(n: int, what: str) -> int:
    """Number of training rows of an n-row matrix: the first n - max(1, n // 5) rows train, the
    rest test (no shuffling: reproducible, and a memory-mapped file stays memory-mapped)."""
    if n < 2:
        raise DataError(f"{what} has {n} row(s); at least 2 are needed to split into train and test")
    return n - max(1, n // TEST_FRACTION_DIVISOR)


def check_matrix(shape: tuple[int, ...], dtype: np.dtype, what: str) -> None:
    """Raise DataError unless shape is 2-D with at least one row and one column and dtype is a
    real number type (bool, complex, strings and objects are refused)."""
    if len(shape) != 2:
        raise DataError(f"{what} has shape {tuple(shape)}; expected a 2-D matrix [n_samples, d]")
    if np.dtype(dtype).kind not in "fiu":
        raise DataError(f"{what} has dtype {dtype}; expected a real numeric dtype (float or integer)")
    if shape[0] == 0 or shape[1] == 0:
        raise DataError(f"{what} is empty (shape {tuple(shape)})")


def _row_chunks(x: np.ndarray):
    rows = max(1, CHUNK_BYTES // max(1, x.shape[1] * 8))
    for s in range(0, x.shape[0], rows):
        yield s, np.asarray(x[s:s + rows])


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise DataError naming `what` and the first bad row if x [n, d] holds NaN or Inf.
    Reads x chunk by chunk (about 64 MiB at a time), so a np.memmap is never loaded whole."""
    if x.dtype.kind not in "fc":
        return
    for s, part in _row_chunks(x):
        ok = np.isfinite(part)
        if not ok.all():
            r, c = np.argwhere(~ok)[0]
            kind = "NaN" if np.isnan(part[r, c]) else "Inf"
            raise DataError(f"{what} contains {kind} (first at row {s + r}, column {c})")


def array_stats(x: np.ndarray) -> dict:
    """Summary of x [n, d], computed chunkwise in float64: min and max value, mean squared norm
    (mean over samples of ||x||^2) and total variance (sum over the d dimensions of the variance)."""
    n, d = x.shape
    lo, hi, sq = np.inf, -np.inf, 0.0
    col_sum = np.zeros(d)
    for _, part in _row_chunks(x):
        p = part.astype(np.float64)
        lo, hi = min(lo, float(p.min())), max(hi, float(p.max()))
        sq += float(np.einsum("ij,ij->", p, p))
        col_sum += p.sum(axis=0)
    mean = col_sum / n
    mean_sq_norm = sq / n
    return {"min": lo, "max": hi, "mean_sq_norm": mean_sq_norm,
            "total_variance": max(0.0, mean_sq_norm - float(mean @ mean))}
