"""One chunk of samples as one ANS stream (constriction's stack coder, 32-bit words), in the chunk
stream of format version 3, or of versions 1 and 2 (``ChunkCoder.version``).

Decoding order (the encoder writes the reverse, since ANS is last-in first-out):
  1. activity: version 3, the symbols of ``occupancy.py`` (the occupancy patterns of the tree over
     the features, level by level; under a forest, depth by depth: the children's bits, the hubs'
     trees, the depth's tree); versions 1 and 2, the bits
     of ``activity.py`` (per layer of the feature forest: root bits, then level by level);
  2. values: for each feature f in ascending order that is active in the chunk, the value symbols
     of its active latents in sample order, each from feature f's categorical (bin - value_lo[f],
     or T_f for an escape);
  3. escapes: for every escaped value in the order met in 2, its bin as zigzag uint32 in two
     uniform 16-bit symbols (high half first).
Models: a binary decision (versions 1 and 2: every activity bit; version 3: a forest's bits) with
24-bit fixed-point probability p is coded as constriction's Bernoulli(perfect=False) codes it (the
coder hands it as a two-symbol Categorical(perfect=False) row (1 - p, p), which quantises every such
p to the same interval); an occupancy pattern with its node's Categorical(perfect=False) over the
integer weights ``occupancy.py`` states (one call per active node); a value symbol with its
feature's Categorical(perfect=False) over the weights of ``entropy_model.py``, whose intervals
that module states (the encoder hands each symbol its interval as a three-symbol row, one call for
all; the decoder uses each feature's model in turn).
The number of samples n is known to the decoder (it is in the chunk header). A stream decodes
cleanly only if the decoder ends with an empty coder and the words are exactly those the encoder
writes for the codes they decode to (an escaped bin inside its feature's table, for one, is
refused); anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import constriction
import numpy as np

from mdlcodec.codec.entropy.activity import ActivityDecisions, ActivityTables, activity_decisions, decode_activity
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.occupancy import (
    ContextPatterns,
    OccupancySymbols,
    Patterns,
    decode_occupancy,
    occupancy_symbols,
)
from mdlcodec.codec.entropy.occupancy import bit_rows as _bit_rows
from mdlcodec.codec.format.container import MAX_CHUNK_LATENTS, VERSION
from mdlcodec.codec.sparse import SparseCodes

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)  # one row of probabilities per symbol
_UINT16 = constriction.stream.model.Uniform(1 << 16)
_ONE = 1 << 24


def _interval_rows(left: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and [m, 3] weight rows whose constriction Categorical (perfect=False) codes exactly the
    24-bit intervals [left, left + width): rows summing to 2**24 - 3 make its scale 1.0, so the
    three symbols get the intervals [0, a + 1), [a + 1, a + b + 2), [a + b + 2, 2**24). The interval
    must not be wider than 2**24 - 2 (three symbols need three slots)."""
    m = len(left)
    rows = np.zeros((m, 3))
    sym = np.ones(m, dtype=np.int32)
    rows[:, 0] = left - 1
    rows[:, 1] = width - 1
    rows[:, 2] = _ONE - 1 - left - width
    first = left == 0
    rows[first, 0], rows[first, 1], rows[first, 2] = width[first] - 1, 0, _ONE - 2 - width[first]
    sym[first] = 0
    last = (left + width == _ONE) & ~first
    rows[last, 0], rows[last, 1], rows[last, 2] = left[last] - 2, 0, width[last] - 1
    sym[last] = 2
    return sym, rows


NOT_CANONICAL = "its stream is not what the encoder writes for what it decodes to (damaged words)"


class StreamError(ValueError):
    """The words do not decode to a valid chunk under this model."""


@dataclass
class ChunkCoder:
    """Encodes and decodes chunks of SparseCodes under one entropy model, in the chunk stream of
    format ``version`` (1 and 2 share one; 3, ``occupancy.py``'s activity)."""

    model: EntropyModel
    version: int = VERSION

    @property
    def tables(self) -> ActivityTables:
        return self.model.activity_tables

    def _check(self, codes: SparseCodes) -> None:
        if codes.d_sae != self.model.d_sae:
            raise ValueError(f"codes have {codes.d_sae} features, the entropy model {self.model.d_sae}")

    def _by_feature(self, feats: np.ndarray) -> np.ndarray:
        """Stable order of the active latents by feature (radix sort when ids fit 16 bits)."""
        if self.model.d_sae <= 1 << 16:
            return np.argsort(feats.astype(np.uint16), kind="stable")
        return np.argsort(feats, kind="stable")

    def _encode_values(self, coder, f_sorted: np.ndarray, sym: np.ndarray) -> None:
        """Value symbols in stream order (f_sorted ascending), pushed onto the coder (reverse order)."""
        cdf = self.model.value_cdf
        encode = coder.encode_reverse
        if cdf is not None:
            starts, c = cdf
            at = starts[f_sorted] + sym
            left = c[at]
            width = c[at + 1] - left
            wide = width > _ONE - 2  # cannot be coded as three symbols: their own feature's model
            if not wide.any():
                s3, rows = _interval_rows(left, width)
                encode(s3, _CATEGORICAL, rows)
                return
            # runs of symbols alike: narrow ones in one call each, wide ones by feature
            brk = np.flatnonzero((wide[1:] != wide[:-1]) | (wide[1:] & (f_sorted[1:] != f_sorted[:-1]))) + 1
            bounds = np.r_[0, brk, len(sym)].tolist()
            models = self.model.value_models
            for s, e in reversed(list(pairwise(bounds))):
                if wide[s]:
                    encode(sym[s:e], models[int(f_sorted[s])])
                else:
                    s3, rows = _interval_rows(left[s:e], width[s:e])
                    encode(s3, _CATEGORICAL, rows)
            return
        starts = np.flatnonzero(np.r_[True, f_sorted[1:] != f_sorted[:-1]])
        models = self.model.value_models
        for f, s, e in zip(f_sorted[starts[::-1]].tolist(), starts[::-1].tolist(),
                           np.r_[starts[1:], len(f_sorted)][::-1].tolist()):
            encode(sym[s:e], models[f])

    def _activity(self, codes: SparseCodes) -> OccupancySymbols | ActivityDecisions:
        """The activity symbols of the format version (``occupancy.py``; versions 1 and 2 ``activity.py``)."""
        if self.version >= 3:
            return occupancy_symbols(codes, self.model.occupancy_tables)
        return activity_decisions(codes, self.tables)

    def _push(self, coder, f_sorted: np.ndarray, sym: np.ndarray, escaped: np.ndarray,
              activity: OccupancySymbols | ActivityDecisions) -> None:
        """Pushes a chunk's symbols onto the coder in the reverse of decoding order: the escaped bins
        (``escaped``, in value order), the value symbols (``sym`` of the features ``f_sorted``), the activity."""
        if len(escaped):
            zz = ((escaped << 1) ^ (escaped >> 63)) & 0xFFFFFFFF
            coder.encode_reverse(np.stack([zz >> 16, zz & 0xFFFF], axis=1).ravel().astype(np.int32), _UINT16)
        if len(f_sorted):
            self._encode_values(coder, f_sorted, sym)
        if isinstance(activity, OccupancySymbols):
            encode = coder.encode_reverse
            for step in reversed(activity.steps):
                if isinstance(step, Patterns):
                    for model, masks in reversed(step.runs()):
                        encode(masks, model)
                elif isinstance(step, ContextPatterns):
                    for masks, rows in step.batches(reverse=True):
                        encode(masks, _CATEGORICAL, rows)
                elif len(step.symbols):
                    encode(step.symbols, _CATEGORICAL, step.rows)
            return
        bits = np.concatenate([b for b, _ in activity.steps])
        if len(bits):
            coder.encode_reverse(bits, _CATEGORICAL, _bit_rows(np.concatenate([p for _, p in activity.steps])))

    def encode(self, codes: SparseCodes) -> np.ndarray:
        """Codes of one chunk -> compressed uint32 words."""
        self._check(codes)
        coder = constriction.stream.stack.AnsCoder()
        order = self._by_feature(codes.indices)
        f_sorted = codes.indices[order]
        b_sorted = codes.bins[order]
        sym = self.model.value_symbols(f_sorted, b_sorted)
        esc = sym == self.model.table_sizes[f_sorted]
        self._push(coder, f_sorted, sym, b_sorted[esc].astype(np.int64), self._activity(codes))
        return coder.get_compressed()

    def decode(self, words: np.ndarray, n: int, stats: dict | None = None) -> SparseCodes:
        """Compressed words of a chunk of n samples -> its codes. Raises StreamError if they do not fit,
        and for words that are not the stream ``encode`` writes for the codes they decode to (an ANS
        decoder accepts some damaged streams, the last symbols of a damaged first word among them):
        version 3 pushes the symbols it read back onto a coder (the decoder refuses every symbol
        ``encode`` would not write for what they decode to), versions 1 and 2 encode the codes again.

        If ``stats`` is given, adds the bits spent on activity and on values to its keys
        "activity_bits" and "value_bits" (measured on the stream, they sum to 32 * len(words)).
        """
        total_bits = 32 * len(words)
        empty = np.zeros(0, dtype=np.int32)
        words = np.ascontiguousarray(words, dtype=np.uint32)

        def bits(probs: np.ndarray) -> np.ndarray:
            return coder.decode(_CATEGORICAL, _bit_rows(probs)) if len(probs) else empty

        try:  # constriction refuses some words at once (a stream never ends in a zero word)
            coder = constriction.stream.stack.AnsCoder(words)
            if self.version >= 3:
                rows, feats, activity = decode_occupancy(coder.decode, n, self.model.occupancy_tables,
                                                         self.model.d_sae, MAX_CHUNK_LATENTS)
            else:
                rows, feats = decode_activity(bits, n, self.tables, self.model.d_sae, MAX_CHUNK_LATENTS)
            value_bits = coder.num_bits()
            order = self._by_feature(feats)
            f_sorted = feats[order]
            counts = np.bincount(f_sorted, minlength=self.model.d_sae)
            active = np.flatnonzero(counts)
            models, decode = self.model.value_models, coder.decode
            parts = list(map(decode, [models[f] for f in active.tolist()], counts[active].tolist()))
            sym = np.concatenate(parts) if parts else empty
            sizes = self.model.table_sizes[f_sorted]
            lo = self.model.value_lo[f_sorted]
            bins_sorted = sym.astype(np.int64) + lo
            esc = sym == sizes
            escaped = np.zeros(0, dtype=np.int64)
            if esc.any():
                halves = coder.decode(_UINT16, 2 * int(esc.sum())).astype(np.int64).reshape(-1, 2)
                zz = (halves[:, 0] << 16) | halves[:, 1]
                escaped = bins_sorted[esc] = (zz >> 1) ^ -(zz & 1)
        except Exception as e:  # constriction raises on impossible states of a damaged stream
            raise StreamError(f"stream does not decode: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if not coder.is_empty():
            raise StreamError("stream has bits left over after decoding: it does not match the model")
        if np.any(bins_sorted == 0) or np.any(np.abs(bins_sorted) > 2**31 - 1):
            raise StreamError("stream decodes to invalid bins")
        bins = np.empty(len(feats), dtype=np.int32)
        bins[order] = bins_sorted
        codes = SparseCodes.from_rows(rows, feats, bins, n, self.model.d_sae)
        if self.version >= 3:
            rel = escaped - lo[esc]
            if np.any((rel >= 0) & (rel < sizes[esc])):
                raise StreamError(NOT_CANONICAL)
            again = constriction.stream.stack.AnsCoder()
            self._push(again, f_sorted, sym, escaped, activity)
            again = again.get_compressed()
        else:
            again = self.encode(codes)
        if not np.array_equal(again, words):
            raise StreamError(NOT_CANONICAL)
        if stats is not None:
            stats["activity_bits"] = stats.get("activity_bits", 0) + total_bits - value_bits
            stats["value_bits"] = stats.get("value_bits", 0) + value_bits
        return codes

    def ideal_bits(self, codes: SparseCodes) -> dict[str, float]:
        """Code length in bits of these codes under the model (the cross-entropy the coder should reach)."""
        self._check(codes)
        if self.version >= 3:
            activity = occupancy_symbols(codes, self.model.occupancy_tables, chunk=False).ideal_bits()
        else:
            activity = activity_decisions(codes, self.tables).ideal_bits()
        values = self.model.value_bits(codes.indices, codes.bins)
        return {"activity": activity, "values": values, "total": activity + values}
