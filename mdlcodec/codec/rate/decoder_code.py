"""The decoder's rows coded at the precision a tolerance allows: the model term of an honest two-part
code (a float32 decoder of 4,608 x 576 is 85 Mbit, which only millions of coded tokens repay).

Quantisation, per row f of W_dec [d_sae, d_in] float32, with L levels on each side of 0:

    scale_f = max_j |W_dec[f, j]| (float32),  h_f = float32(scale_f / L),
    q[f, j] = clip(rint(float32(W_dec[f, j] / h_f)), -L, L) (0 where h_f is 0),
    W_hat[f, j] = float32(q[f, j]) * h_f   (one float32 product: the same on every machine).

Coding: the q of every row, row by row, as symbols q + L of one categorical model whose weights are
the symbol counts + 1 (stored as int64), quantised by constriction's own rule (Categorical,
perfect=False, as the entropy model's value tables are), on one ANS stack stream (uint32 words).

The model section holds these instead of W_dec (``ARRAYS``): W_dec_levels int64 [1] (L),
W_dec_row_scale float32 [d_sae], W_dec_counts int64 [2L + 1], W_dec_words uint32 [w].

Decoding trusts nothing and accepts exactly what ``CodedRows.encode`` writes (canonical, as the
chunks are): every array's dtype and shape; L in [1, MAX_LEVELS]; scales finite, >= 0 and not -0.0;
counts each in [0, d_sae * d_in] summing, in exact integers, to d_sae * d_in <= MAX_WEIGHTS; beyond
2**20 weights at least MIN_BITS_PER_WEIGHT coded bits each, so that the work of decoding is bounded
by the section's size (at most 8,192 weights per stored byte); then, before allocating the rows,
the memory they take (``check_memory``: the symbols, 2 or 4 bytes a weight, and the float32 rows).
The symbols are decoded in blocks of BLOCK symbols, each row checked as it ends: its largest |q| must be the
one its scale gives (min(L, rint(scale_f / h_f)), 0 where h_f is 0: the writer's own maximum, so the
same rows at 2L levels with the scale doubled are refused), the counts must be the symbols' own, the
stream must end exactly, and, where the caller knows the fingerprint the rows must have
(``decode(rows_seen=...)``: a file's header), the blocks are hashed as they are decoded and a
mismatch is refused before the rows are built. Last the symbols are coded again and must give the
stored words exactly (an empty stream, or any other stream that decodes to the same symbols, is
refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import constriction
import numpy as np

from mdlcodec.codec.arrays import check_memory, take

MAX_LEVELS = 1 << 15
MAX_WEIGHTS = 1 << 28  # decoder weights a model section may describe (1 GiB of float32)
MIN_BITS_PER_WEIGHT = 1 / 256  # below 2**20 weights any stream; above, at least this many coded bits each
BLOCK = 1 << 18  # symbols decoded, checked and hashed at a time
ARRAYS = frozenset({"W_dec_levels", "W_dec_row_scale", "W_dec_counts", "W_dec_words"})


def _steps(scale: np.ndarray, levels: int) -> np.ndarray:
    return (scale / np.float32(levels)).astype(np.float32)


def _dequantise(q: np.ndarray, scale: np.ndarray, levels: int) -> np.ndarray:
    """W_hat [d_sae, d_in] float32 from the integers q: float32(q) * h_f, one float32 product."""
    return (q.astype(np.float32) * _steps(scale, levels)[:, None]).astype(np.float32)


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts.astype(np.float64) + 1.0, perfect=False)


def _largest(scale: np.ndarray, levels: int) -> np.ndarray:
    """[d_sae] int64: the largest |q| the writer gives each row, that of its largest weight (|W| = scale):
    min(L, rint(float32(scale_f / h_f))), 0 where h_f is 0 (rounding is monotone, so no weight of the
    row gives more)."""
    h = _steps(scale, levels)
    safe = np.where(h > 0, h, np.float32(1))
    top = np.where(h > 0, np.rint(scale / safe), 0).astype(np.int64)
    return np.minimum(top, levels)


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

    @property
    def n_weights(self) -> int:
        return len(self.row_scale) * self.d_in

    def decode(self, rows_seen: Callable[[np.ndarray], None] | None = None,
               rows_checked: Callable[[], None] | None = None) -> np.ndarray:
        """W_hat [d_sae, d_in] float32; ValueError unless the arrays are exactly what ``encode`` writes
        (the module docstring's checks). ``rows_seen``: called with each block of decoded rows (float32,
        flat, in row order) as it is decoded, ``rows_checked`` once they all were, before the rows are
        built (a fingerprint's hash and its comparison: a mismatch refused while memory holds only the
        symbols)."""
        n, L = self.n_weights, self.levels
        sym_dtype = np.uint16 if 2 * L < 1 << 16 else np.int32
        check_memory(n * (np.dtype(sym_dtype).itemsize + 4) + 40 * min(n, BLOCK), "the coded decoder rows")
        model = _model(self.counts)
        largest = _largest(self.row_scale, L)
        h = _steps(self.row_scale, L)
        sym = np.empty(n, sym_dtype)
        seen = np.zeros(len(self.counts), np.int64)
        top = np.zeros(len(self.row_scale), np.int64)
        try:
            coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(self.words, np.uint32))
            for s in range(0, n, BLOCK):
                e = min(s + BLOCK, n)
                block = coder.decode(model, e - s)
                sym[s:e] = block
                seen += np.bincount(block, minlength=len(self.counts))
                first, last = s // self.d_in, (e - 1) // self.d_in
                bounds = np.clip(np.arange(first, last + 2, dtype=np.int64) * self.d_in - s, 0, e - s)
                q = block - np.int32(L)  # int32: |q| <= L <= 2**15
                top[first:last + 1] = np.maximum(top[first:last + 1], np.maximum.reduceat(np.abs(q), bounds[:-1]))
                done = last + 1 if e % self.d_in == 0 else last  # rows that end in this block
                bad = np.flatnonzero(top[first:done] != largest[first:done])
                if len(bad):
                    raise _NotWritten(f"row {first + int(bad[0])} decodes to levels up to {int(top[first + bad[0]])}, "
                                      f"its scale gives {int(largest[first + bad[0]])}")
                if rows_seen is not None:
                    rows_seen(q.astype(np.float32) * np.repeat(h[first:last + 1], np.diff(bounds)))
        except _NotWritten as e:
            raise ValueError(f"the coded decoder rows are not what the writer writes ({e})") from None
        except Exception as e:  # constriction raises its own types for a damaged stream
            raise ValueError(f"the coded decoder rows do not decode ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})") from None
        if not coder.is_empty():
            raise ValueError("the coded decoder rows leave words unread")
        if not np.array_equal(seen, self.counts):
            raise ValueError("W_dec_counts are not the counts of the coded weights")
        if rows_checked is not None:
            rows_checked()
        again = constriction.stream.stack.AnsCoder()
        for s in reversed(range(0, n, BLOCK)):
            again.encode_reverse(sym[s:min(s + BLOCK, n)].astype(np.int32), model)
        if not np.array_equal(again.get_compressed(), self.words):
            raise ValueError("the coded decoder rows are not the stream the writer writes for them")
        W = np.empty(n, np.float32)
        for s in range(0, n, BLOCK):
            e = min(s + BLOCK, n)
            first, last = s // self.d_in, (e - 1) // self.d_in
            bounds = np.clip(np.arange(first, last + 2, dtype=np.int64) * self.d_in - s, 0, e - s)
            W[s:e] = (sym[s:e].astype(np.int32) - np.int32(L)).astype(np.float32) * np.repeat(h[first:last + 1],
                                                                                               np.diff(bounds))
        return W.reshape(len(self.row_scale), self.d_in)

    def bits(self) -> int:
        """Bits of the arrays a model section stores for them."""
        return 64 + 32 * len(self.row_scale) + 64 * len(self.counts) + 32 * len(self.words)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"W_dec_levels": np.array([self.levels], np.int64), "W_dec_row_scale": self.row_scale,
                "W_dec_counts": self.counts, "W_dec_words": self.words}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], d_in: int) -> "CodedRows":
        """From a model section's arrays (d_in from b_dec); ValueError naming what is wrong, before
        anything is decoded or allocated (the checks that need the symbols are ``decode``'s)."""
        levels = int(take(a, "W_dec_levels", np.int64, (1,))[0])
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"W_dec_levels is {levels}, not in [1, {MAX_LEVELS}]")
        scale = take(a, "W_dec_row_scale", np.float32, (None,))
        if len(scale) < 1 or not (np.isfinite(scale).all() and (scale >= 0).all()) or np.signbit(scale).any():
            raise ValueError("W_dec_row_scale must hold finite values >= 0 (not -0.0), at least one")
        n = len(scale) * d_in
        if n > MAX_WEIGHTS:
            raise ValueError(f"the coded decoder claims {len(scale)} x {d_in} weights, more than {MAX_WEIGHTS}")
        counts = take(a, "W_dec_counts", np.int64, (2 * levels + 1,))
        if (counts < 0).any() or (counts > n).any() or sum(counts.tolist()) != n:  # exact: no int64 wrap
            raise ValueError("W_dec_counts must be counts >= 0 of every coded weight")
        words = take(a, "W_dec_words", np.uint32, (None,))
        if n > 1 << 20 and 32 * len(words) < n * MIN_BITS_PER_WEIGHT:
            raise ValueError(f"the coded decoder claims {n} weights in {32 * len(words)} bits, fewer than "
                             f"{MIN_BITS_PER_WEIGHT:g} a weight")
        return cls(levels, scale, counts, words, d_in)


class _NotWritten(Exception):
    """A decoded row the writer would not have written (``decode`` turns it into its ValueError)."""
