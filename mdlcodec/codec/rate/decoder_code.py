"""The decoder's rows coded at the precision a tolerance allows: the model term of an honest two-part
code (a float32 decoder of 4,608 x 576 is 85 Mbit, which only millions of coded tokens repay).

Quantisation, per row f of W_dec [d_sae, d_in] float32, with L levels on each side of 0:

    scale_f = max_j |W_dec[f, j]| (float32),  h_f = float32(scale_f / L),
    q[f, j] = rint(W_dec[f, j] / h_f) in [-L, L] (0 for a zero row),
    W_hat[f, j] = float32(q[f, j]) * h_f   (one float32 product: the same on every machine).

Coding: the q of every row, row by row, as symbols q + L of one categorical model whose weights are
the symbol counts + 1 (stored as int64), quantised by constriction's own rule (Categorical,
perfect=False, as the entropy model's value tables are), on one ANS stack stream (uint32 words).

The model section holds these instead of W_dec (``ARRAYS``): W_dec_levels int64 [1] (L),
W_dec_row_scale float32 [d_sae], W_dec_counts int64 [2L + 1], W_dec_words uint32 [w]. Decoding
checks every array (dtype, shape, L in [1, MAX_LEVELS], counts >= 0 summing to d_sae * d_in <=
MAX_WEIGHTS, and beyond 2**20 weights at least MIN_BITS_PER_WEIGHT coded bits each, so that a few
crafted bytes cannot claim a huge decoder) before it allocates, and refuses a stream that ends early
or has words left.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from mdlcodec.codec.arrays import take

MAX_LEVELS = 1 << 15
MAX_WEIGHTS = 1 << 28  # decoder weights a model section may describe (1 GiB of float32)
MIN_BITS_PER_WEIGHT = 1 / 256  # below 2**20 weights any stream; above, at least this many coded bits each
ARRAYS = frozenset({"W_dec_levels", "W_dec_row_scale", "W_dec_counts", "W_dec_words"})


def _steps(scale: np.ndarray, levels: int) -> np.ndarray:
    return (scale / np.float32(levels)).astype(np.float32)


def _dequantise(q: np.ndarray, scale: np.ndarray, levels: int) -> np.ndarray:
    """W_hat [d_sae, d_in] float32 from the integers q: float32(q) * h_f, one float32 product."""
    return (q.astype(np.float32) * _steps(scale, levels)[:, None]).astype(np.float32)


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts.astype(np.float64) + 1.0, perfect=False)


@dataclass(frozen=True)
class CodedRows:
    """W_dec coded as this module's docstring says: levels L, row_scale [d_sae] float32, counts
    [2L + 1] int64, words uint32; d_in the row length."""

    levels: int
    row_scale: np.ndarray
    counts: np.ndarray
    words: np.ndarray
    d_in: int

    @classmethod
    def encode(cls, W_dec: np.ndarray, levels: int) -> tuple["CodedRows", np.ndarray]:
        """W_dec [d_sae, d_in] coded at ``levels``, and W_hat, what ``decode`` gives back."""
        W = np.ascontiguousarray(W_dec, np.float32)
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"levels must lie in [1, {MAX_LEVELS}], got {levels}")
        scale = np.abs(W).max(axis=1).astype(np.float32)
        h = _steps(scale, levels)
        safe = np.where(h > 0, h, np.float32(1))
        q = np.where(h[:, None] > 0, np.rint(W / safe[:, None]), 0).astype(np.int64)
        q = np.clip(q, -levels, levels)
        sym = (q + levels).astype(np.int32).ravel()
        counts = np.bincount(sym, minlength=2 * levels + 1).astype(np.int64)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(sym, _model(counts))
        coded = cls(levels, scale, counts, coder.get_compressed().astype(np.uint32), W.shape[1])
        return coded, _dequantise(q, scale, levels)

    def decode(self) -> np.ndarray:
        """W_hat [d_sae, d_in] float32; ValueError if the stream does not hold exactly its symbols."""
        n = len(self.row_scale) * self.d_in
        try:
            coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(self.words, np.uint32))
            sym = coder.decode(_model(self.counts), n)
        except Exception as e:  # constriction raises its own types for a damaged stream
            raise ValueError(f"the coded decoder rows do not decode ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})") from None
        if not coder.is_empty():
            raise ValueError("the coded decoder rows leave words unread")
        return _dequantise((sym.astype(np.int64) - self.levels).reshape(len(self.row_scale), self.d_in),
                           self.row_scale, self.levels)

    def bits(self) -> int:
        """Bits of the arrays a model section stores for them."""
        return 64 + 32 * len(self.row_scale) + 64 * len(self.counts) + 32 * len(self.words)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"W_dec_levels": np.array([self.levels], np.int64), "W_dec_row_scale": self.row_scale,
                "W_dec_counts": self.counts, "W_dec_words": self.words}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], d_in: int) -> "CodedRows":
        """From a model section's arrays (d_in from b_dec); ValueError naming what is wrong."""
        levels = int(take(a, "W_dec_levels", np.int64, (1,))[0])
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"W_dec_levels is {levels}, not in [1, {MAX_LEVELS}]")
        scale = take(a, "W_dec_row_scale", np.float32, (None,))
        if len(scale) < 1 or not (np.isfinite(scale).all() and (scale >= 0).all()):
            raise ValueError("W_dec_row_scale must hold finite values >= 0, at least one")
        if len(scale) * d_in > MAX_WEIGHTS:
            raise ValueError(f"the coded decoder claims {len(scale)} x {d_in} weights, more than {MAX_WEIGHTS}")
        counts = take(a, "W_dec_counts", np.int64, (2 * levels + 1,))
        if (counts < 0).any() or int(counts.sum()) != len(scale) * d_in:
            raise ValueError("W_dec_counts must be counts >= 0 of every coded weight")
        words = take(a, "W_dec_words", np.uint32, (None,))
        n = len(scale) * d_in
        if n > 1 << 20 and 32 * len(words) < n * MIN_BITS_PER_WEIGHT:
            raise ValueError(f"the coded decoder claims {n} weights in {32 * len(words)} bits, fewer than "
                             f"{MIN_BITS_PER_WEIGHT:g} a weight")
        return cls(levels, scale, counts, words, d_in)
