"""Uniform scalar quantiser of SAE latents.

A latent value v of feature f becomes the integer bin ``rint(v / step[f])``; its reconstruction
is ``bin * step[f]``. A latent whose bin is 0 is inactive: its reconstruction (zero) is the same
whether or not it is sent, so it is dropped and costs no bits. Inactive latents stay exactly zero.
"""

from __future__ import annotations

import numpy as np

from mdlcodec.codec.sparse import SparseCodes, SparseLatents
from mdlcodec.core.errors import CodecError

MAX_BIN = 2**31 - 1
"""Largest |bin| the format codes (bins are int32; -2**31 is not one)."""


class RowError(CodecError):
    """A row the format cannot code. ``row`` counts among the rows given (``Codec`` adds the chunk's
    place in the file, ``describe`` says it again with that row)."""

    def __init__(self, row: int, problem: str):
        self.row, self.problem = row, problem
        super().__init__(self.describe(row))

    def describe(self, row: int) -> str:
        return f"row {row} {self.problem}"


class BinRangeError(RowError):
    """A latent the format cannot code: not finite, or its bin beyond +-MAX_BIN."""

    def __init__(self, row: int, feature: int, value: float, step: float):
        if not np.isfinite(value):
            problem = f"gives latent {feature} the value {value}, which cannot be coded"
        else:
            problem = (f"gives latent {feature} the value {value:.4g}, {value / step:.4g} quantiser steps: beyond "
                       f"the {MAX_BIN:,} that the format codes")
        super().__init__(row, problem)


def _bins(values: np.ndarray, steps: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """rint(values / steps) as float32; BinRangeError at the first latent that is not finite or
    whose bin is beyond MAX_BIN (none is clipped: a clipped bin would decode to another value)."""
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN are refused just below
        bins = np.rint(values / steps)
    bad = ~(np.abs(bins) <= MAX_BIN)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise BinRangeError(int(rows[j]), int(cols[j]), float(values[j]), float(steps[j]))
    return bins


class Quantiser:
    """step: [d_sae] float32, the bin width of each feature in latent units (> 0)."""

    def __init__(self, step: np.ndarray):
        step = np.ascontiguousarray(step, dtype=np.float32)
        if step.ndim != 1 or not np.all(np.isfinite(step)) or np.any(step <= 0):
            raise ValueError("quantiser steps must be a 1-D array of finite positive numbers")
        self.step = step

    @classmethod
    def uniform(cls, step: float, d_sae: int) -> "Quantiser":
        return cls(np.full(d_sae, step, dtype=np.float32))

    @property
    def d_sae(self) -> int:
        return len(self.step)

    def quantise(self, z: np.ndarray) -> SparseCodes:
        """Dense latents [n, d_sae] (float) -> sparse integer codes; zero latents stay inactive.
        BinRangeError for a latent that is not finite or whose bin is beyond +-MAX_BIN."""
        z = np.asarray(z, dtype=np.float32)
        rows, cols = np.nonzero(z)
        bins = _bins(z[rows, cols], self.step[cols], rows, cols)
        keep = bins != 0
        bins = bins[keep].astype(np.int32)
        return SparseCodes.from_rows(rows[keep], cols[keep], bins, z.shape[0], self.d_sae)

    def quantise_sparse(self, values: np.ndarray, indices: np.ndarray) -> SparseCodes:
        """Latents in sparse form (values, indices [n, m], as ``SAE.encode_sparse`` gives them; value 0
        is padding) -> exactly the codes ``quantise`` gives for the dense matrix they describe: each
        row's indices sorted ascending, the same float32 arithmetic, zero bins dropped. ValueError if
        an index of a nonzero value is outside [0, d_sae) or repeats within its row; BinRangeError as quantise."""
        indptr, cols, vals = SparseLatents(values, indices).csr()
        if len(cols) and (cols.min() < 0 or cols.max() >= self.d_sae):
            raise ValueError(f"latent indices must lie in [0, {self.d_sae})")
        rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
        bins = _bins(vals, self.step[cols], rows, cols)
        keep = bins != 0
        bins = bins[keep].astype(np.int32)  # as in quantise
        return SparseCodes.from_rows(rows[keep], cols[keep], bins, len(indptr) - 1, self.d_sae)

    def quantise_latents(self, z: np.ndarray | SparseLatents) -> SparseCodes:
        """Latents dense [n, d_sae] (``quantise``) or SparseLatents (``quantise_sparse``): the same codes either way."""
        return self.quantise_sparse(*z) if isinstance(z, SparseLatents) else self.quantise(z)

    def values(self, codes: SparseCodes) -> np.ndarray:
        """[nnz] float32 latent values of the codes' entries: bin * step (float32 arithmetic)."""
        return codes.bins.astype(np.float32) * self.step[codes.indices]

    def dequantise(self, codes: SparseCodes) -> np.ndarray:
        """Sparse codes -> dense latents [n, d_sae] float32."""
        z = np.zeros((codes.n, codes.d_sae), dtype=np.float32)
        z[codes.rows(), codes.indices] = self.values(codes)
        return z
