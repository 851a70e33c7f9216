"""Sparse integer codes: the quantised latents of many samples in CSR form.

This is what the entropy coder sees and what decoding reproduces exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class SparseCodes:
    """Quantised latents of ``n`` samples over ``d_sae`` features, CSR layout.

    indptr:  [n + 1] int64; row r's entries are ``indptr[r]:indptr[r + 1]``.
    indices: [nnz] int32 feature ids, strictly ascending within a row.
    bins:    [nnz] int32 quantisation bins, never 0 (a zero bin is an inactive latent).
    """

    indptr: np.ndarray
    indices: np.ndarray
    bins: np.ndarray
    d_sae: int

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def rows(self) -> np.ndarray:
        """[nnz] int64: the row of every entry."""
        return np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self.indptr))

    def to_dense(self) -> np.ndarray:
        """[n, d_sae] int32 bins, zero where inactive."""
        out = np.zeros((self.n, self.d_sae), dtype=np.int32)
        out[self.rows(), self.indices] = self.bins
        return out

    @classmethod
    def from_dense(cls, bins: np.ndarray) -> "SparseCodes":
        """From [n, d_sae] integer bins (zeros are inactive)."""
        bins = np.asarray(bins)
        rows, cols = np.nonzero(bins)
        indptr = np.zeros(bins.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=bins.shape[0]), out=indptr[1:])
        return cls(indptr, cols.astype(np.int32), bins[rows, cols].astype(np.int32), bins.shape[1])

    @classmethod
    def from_rows(cls, rows: np.ndarray, indices: np.ndarray, bins: np.ndarray, n: int, d_sae: int) -> "SparseCodes":
        """From entries already sorted by (row, feature)."""
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return cls(indptr, indices.astype(np.int32, copy=False), bins.astype(np.int32, copy=False), d_sae)

    @classmethod
    def empty(cls, d_sae: int) -> "SparseCodes":
        """The codes of no samples (n = 0) over d_sae features."""
        return cls(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), d_sae)

    @classmethod
    def concat(cls, parts: list["SparseCodes"]) -> "SparseCodes":
        if not parts:
            raise ValueError("concat needs at least one part")
        offsets = np.cumsum([0] + [p.nnz for p in parts[:-1]])
        indptr = np.concatenate([parts[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(parts, offsets)])
        return cls(indptr.astype(np.int64), np.concatenate([p.indices for p in parts]),
                   np.concatenate([p.bins for p in parts]), parts[0].d_sae)

    def to_scipy(self, step: np.ndarray | None = None):
        """A ``scipy.sparse.csr_array`` [n, d_sae]: the int32 bins, or with ``step`` ([d_sae] float32,
        the quantiser's) the float32 latent values bin * step[feature]."""
        import scipy.sparse

        data = self.bins if step is None else self.bins.astype(np.float32) * np.asarray(step, np.float32)[self.indices]
        return scipy.sparse.csr_array((data, self.indices, self.indptr), shape=(self.n, self.d_sae))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SparseCodes) and self.d_sae == other.d_sae
                and np.array_equal(self.indptr, other.indptr) and np.array_equal(self.indices, other.indices)
                and np.array_equal(self.bins, other.bins))


class SparseLatents(NamedTuple):
    """Unquantised latents of n samples in padded row form, as ``SAE.encode_sparse`` gives them:
    values [n, m] float32 and indices [n, m] int64, each row's active latents in any order; an entry
    whose value is 0 is padding (its index means nothing). A tuple: ``values, indices = latents``."""

    values: np.ndarray
    indices: np.ndarray

    @property
    def n(self) -> int:
        return self.values.shape[0]

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The nonzero entries in CSR form, listed as np.nonzero lists a dense matrix's: indptr [n+1]
        int64, indices [nnz] int64 strictly ascending within a row, values [nnz] float32.
        ValueError if the shapes differ or an index repeats within a row."""
        values, indices = np.asarray(self.values, np.float32), np.asarray(self.indices)
        if values.ndim != 2 or values.shape != indices.shape or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"sparse latents need values and integer indices of one shape [n, m], got "
                             f"{list(values.shape)} and {list(indices.shape)} ({indices.dtype})")
        order = np.argsort(indices, axis=1, kind="stable")
        indices = np.take_along_axis(indices, order, 1).astype(np.int64, copy=False)
        values = np.take_along_axis(values, order, 1)
        keep = values != 0
        indptr = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(keep.sum(1), out=indptr[1:])
        indices, values = indices[keep], values[keep]
        row_start = np.zeros(len(indices), dtype=bool)
        row_start[indptr[:-1][np.diff(indptr) > 0]] = True
        if len(indices) > 1 and np.any((np.diff(indices) <= 0) & ~row_start[1:]):
            raise ValueError("sparse latents name one latent twice in a row")
        return indptr, indices, values

    @classmethod
    def concat(cls, parts: list["SparseLatents"]) -> "SparseLatents":
        """The rows of several parts, one after another, padded to the widest (value 0, index 0)."""
        if not parts:
            return cls(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64))
        m = max(p[0].shape[1] for p in parts)
        pad = [((0, 0), (0, m - p[0].shape[1])) for p in parts]
        return cls(np.concatenate([np.pad(np.asarray(p[0], np.float32), w) for p, w in zip(parts, pad)]),
                   np.concatenate([np.pad(np.asarray(p[1], np.int64), w) for p, w in zip(parts, pad)]))
