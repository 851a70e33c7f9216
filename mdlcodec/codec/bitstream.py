"""One chunk of samples as one ANS stream (constriction's stack coder, 32-bit words).

Decoding order (the encoder writes the reverse, since ANS is last-in first-out):
  1. activity: the bits of ``activity.py`` (per layer of the feature forest: root bits, then level
     by level);
  2. values: for each feature f in ascending order that is active in the chunk, the value symbols
     of its active latents in sample order, each from feature f's categorical (bin - value_lo[f],
     or T_f for an escape);
  3. escapes: for every escaped value in the order met in 2, its bin as zigzag uint32 in two
     uniform 16-bit symbols (high half first).
The number of samples n is known to the decoder (it is in the chunk header). A stream decodes
cleanly only if the decoder ends with an empty coder; anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from mdlcodec.codec.activity import ActivityTables, activity_decisions, decode_activity
from mdlcodec.codec.entropy_model import EntropyModel
from mdlcodec.codec.sparse import SparseCodes

_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)
_UINT16 = constriction.stream.model.Uniform(1 << 16)


class StreamError(ValueError):
    """The words do not decode to a valid chunk under this model."""


@dataclass
class ChunkCoder:
    """Encodes and decodes chunks of SparseCodes under one entropy model."""

    model: EntropyModel

    @property
    def tables(self) -> ActivityTables:
        return self.model.activity_tables

    def _check(self, codes: SparseCodes) -> None:
        if codes.d_sae != self.model.d_sae:
            raise ValueError(f"codes have {codes.d_sae} features, the entropy model {self.model.d_sae}")

    def encode(self, codes: SparseCodes) -> np.ndarray:
        """Codes of one chunk -> compressed uint32 words."""
        self._check(codes)
        coder = constriction.stream.stack.AnsCoder()
        feats = codes.indices
        order = np.argsort(feats, kind="stable")
        f_sorted = feats[order]
        sym = self.model.value_symbols(f_sorted, codes.bins[order])
        esc = sym == self.model.table_sizes[f_sorted]
        if esc.any():
            z = codes.bins[order][esc].astype(np.int64)
            zz = ((z << 1) ^ (z >> 63)) & 0xFFFFFFFF
            coder.encode_reverse(np.stack([zz >> 16, zz & 0xFFFF], axis=1).ravel().astype(np.int32), _UINT16)
        if len(f_sorted):
            starts = np.flatnonzero(np.r_[True, f_sorted[1:] != f_sorted[:-1]])
            models, encode = self.model.value_models, coder.encode_reverse
            for f, s, e in zip(f_sorted[starts[::-1]].tolist(), starts[::-1].tolist(),
                               np.r_[starts[1:], len(f_sorted)][::-1].tolist()):
                encode(sym[s:e], models[f])
        for bits, probs in reversed(activity_decisions(codes, self.tables).steps):
            if len(bits):
                coder.encode_reverse(bits, _BERNOULLI, probs)
        return coder.get_compressed()

    def decode(self, words: np.ndarray, n: int, stats: dict | None = None) -> SparseCodes:
        """Compressed words of a chunk of n samples -> its codes. Raises StreamError if they do not fit.

        If ``stats`` is given, adds the bits spent on activity and on values to its keys
        "activity_bits" and "value_bits" (measured on the stream, they sum to 32 * len(words)).
        """
        total_bits = 32 * len(words)
        empty = np.zeros(0, dtype=np.int32)

        def bits(probs: np.ndarray) -> np.ndarray:
            return coder.decode(_BERNOULLI, probs) if len(probs) else empty

        try:  # constriction refuses some words at once (a stream never ends in a zero word)
            coder = constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, dtype=np.uint32))
            rows, feats = decode_activity(bits, n, self.tables, self.model.d_sae)
            value_bits = coder.num_bits()
            order = np.argsort(feats, kind="stable")
            f_sorted = feats[order]
            sym = np.empty(len(feats), dtype=np.int32)
            counts = np.bincount(f_sorted, minlength=self.model.d_sae)
            pos, models, decode = 0, self.model.value_models, coder.decode
            for f, c in zip(np.flatnonzero(counts).tolist(), counts[counts > 0].tolist()):
                sym[pos:pos + c] = decode(models[f], c)
                pos += c
            sizes = self.model.table_sizes[f_sorted]
            bins_sorted = sym.astype(np.int64) + self.model.value_lo[f_sorted]
            esc = sym == sizes
            if esc.any():
                halves = coder.decode(_UINT16, 2 * int(esc.sum())).astype(np.int64).reshape(-1, 2)
                zz = (halves[:, 0] << 16) | halves[:, 1]
                bins_sorted[esc] = (zz >> 1) ^ -(zz & 1)
        except Exception as e:  # constriction raises on impossible states of a damaged stream
            raise StreamError(f"stream does not decode: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if not coder.is_empty():
            raise StreamError("stream has bits left over after decoding: it does not match the model")
        if np.any(bins_sorted == 0) or np.any(np.abs(bins_sorted) > 2**31 - 1):
            raise StreamError("stream decodes to invalid bins")
        if stats is not None:
            stats["activity_bits"] = stats.get("activity_bits", 0) + total_bits - value_bits
            stats["value_bits"] = stats.get("value_bits", 0) + value_bits
        bins = np.empty(len(feats), dtype=np.int32)
        bins[order] = bins_sorted
        return SparseCodes.from_rows(rows, feats, bins, n, self.model.d_sae)

    def ideal_bits(self, codes: SparseCodes) -> dict[str, float]:
        """Code length in bits of these codes under the model (the cross-entropy the coder should reach)."""
        self._check(codes)
        activity = activity_decisions(codes, self.tables).ideal_bits()
        values = self.model.value_bits(codes.indices, codes.bins)
        return {"activity": activity, "values": values, "total": activity + values}
