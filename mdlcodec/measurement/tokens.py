"""Which test tokens a figure is over: all of them, or those whose norm is below a stated quantile.

Small transformers put massive activations on a few tokens (SmolLM2-135M: about 45% of the sum of
squares on 81 of 300,000 tokens, norms near 23,000 against a median of 149). FVU over all tokens
weighs those few heavily, so ``measure`` reports it also over the tokens below a norm quantile
(``NormCut``): MSE over those tokens divided by their own variance. Everything is summed in float64,
ROWS rows at a time, so no float64 copy of a split is built whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdlcodec.codec.parallel import slice_codes
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.errors import MdlcodecError

ROWS = 4096
DEFAULT_NORM_QUANTILE = 0.999
"""``measure``'s default: FVU also over the tokens whose norm is at most the 99.9th percentile's."""


def mean_variance(x: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Mean over dimensions of the per-dimension variance of x [n, d] (float64, chunkwise), over the
    rows where the boolean mask ``rows`` [n] is set (all rows if None): the MSE of predicting every
    such sample by their mean, so FVU = MSE / mean_variance."""
    n, d = x.shape
    s1, s2, count = np.zeros(d), 0.0, 0
    for s in range(0, n, ROWS):
        part = np.asarray(x[s:s + ROWS], dtype=np.float64)
        if rows is not None:
            part = part[rows[s:s + ROWS]]
        s1 += part.sum(0)
        s2 += float((part ** 2).sum())
        count += len(part)
    return (s2 - float((s1 ** 2).sum()) / count) / (count * d) if count else float("nan")


def row_norms(x: np.ndarray) -> np.ndarray:
    """[n] float64 Euclidean norm of each row of x [n, d]."""
    return np.concatenate([np.sqrt((np.asarray(x[s:s + ROWS], np.float64) ** 2).sum(1))
                           for s in range(0, len(x), ROWS)] or [np.zeros(0)])


@dataclass(frozen=True)
class NormCut:
    """The test tokens whose norm is at most the ``quantile`` quantile of the test split's norms.

    threshold: that norm (input units); rows: [n] bool mask of the tokens kept; variance: their
    mean_variance (the FVU denominator over them)."""

    quantile: float
    threshold: float
    rows: np.ndarray
    variance: float

    @classmethod
    def of(cls, test: np.ndarray, quantile: float) -> "NormCut":
        """The cut of ``test`` [n, d] at ``quantile`` in (0, 1]. MdlcodecError if it keeps fewer than two tokens."""
        if not 0 < quantile <= 1:
            raise MdlcodecError(f"the norm quantile must be in (0, 1], not {quantile:g}", param="norm_quantile")
        norms = row_norms(test)
        threshold = float(np.quantile(norms, quantile)) if len(norms) else 0.0
        rows = norms <= threshold
        if int(rows.sum()) < 2:
            raise MdlcodecError(f"the norm quantile {quantile:g} keeps {int(rows.sum())} of {len(norms)} test tokens; "
                                "at least 2 are needed for an FVU", param="norm_quantile")
        return cls(quantile, threshold, rows, mean_variance(test, rows))

    def summary(self) -> dict:
        """{quantile, threshold, tokens (kept), test_variance (theirs)} for a result's ``data``."""
        return {"quantile": self.quantile, "threshold": self.threshold, "tokens": int(self.rows.sum()),
                "test_variance": self.variance}

    def fvu(self, codec, codes: SparseCodes, test: np.ndarray) -> float:
        """FVU over the kept tokens of codec's reconstruction of ``codes`` (the test split's quantised
        latents, [n] rows) against ``test`` [n, d_in]."""
        sq, count = 0.0, 0
        for s in range(0, codes.n, ROWS):
            e = min(s + ROWS, codes.n)
            keep = self.rows[s:e]
            if not keep.any():
                continue
            diff = codec.reconstruct(slice_codes(codes, s, e))[keep].astype(np.float64) - np.asarray(test[s:e], np.float64)[keep]
            sq += float(np.einsum("ij,ij->", diff, diff))
            count += int(keep.sum())
        return sq / (count * test.shape[1]) / self.variance if self.variance > 0 else float("nan")
