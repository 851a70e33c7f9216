"""The entropy model of a codec: integer counts fit on training codes, and the one rule that turns
them into the probabilities the coder uses. Encoder and decoder derive identical probabilities from
identical integers on any machine.

Counts (what is stored):
  n_samples        N, the number of training samples the counts were taken from
  active_counts    [d_sae] a_f, how many of them had feature f active
  value_lo         [d_sae] first bin of feature f's value table
  value_offsets    [d_sae + 1] feature f's table is value_counts[value_offsets[f]:value_offsets[f+1]]
                   (T_f >= 1 entries, bins value_lo[f] .. value_lo[f] + T_f - 1)
  value_counts     [sum T_f] how often each bin occurred among the active latents
  escape_counts    [d_sae] how often an active latent fell outside its feature's table
Optional hierarchy (``hierarchy.py``), absent from a flat model's arrays and fingerprint:
  parents          [d_sae] each feature's parent feature, -1 for a root
  joint_counts     [d_sae] how many samples had f and its parent both active (0 for a root)
  hierarchy_kind   [1] 1 = "tree" (a child never fires without its parent: P(f | parent off) = 0),
                   2 = "conditional" (f's activity is coded given its parent's, both states)

Smoothing rule (every symbol the coder can meet gets a non-zero probability):
  P(f active)            = (a_f + 1/2) / (N + 1)                 (Krichevsky-Trofimov)
  with a hierarchy, for a child f of g:
  P(f | g active)        = (joint_f + 1/2) / (a_g + 1)
  P(f | g inactive)      = (a_f - joint_f + 1/2) / (N - a_g + 1)   (0 for a "tree")
  P(bin b | f active)    proportional to value_counts[b] + 1, for the T_f bins of the table
  P(escape | f active)   proportional to escape_counts[f] + 1; an escaped bin is then sent raw
                         as 32 bits (zigzag, two uniform 16-bit symbols).
Activity probabilities reach the coder only through the fixed-point rule in ``activity.py``;
value probabilities are handed to constriction as the float64 weights w_s = ``count + 1`` of the
T_f + 1 symbols (constriction's Categorical, perfect=False), which it quantises by its own
deterministic rule to 24-bit intervals: with sums in float64 taken left to right,
  scale = (2**24 - (T_f + 1)) / (w_0 + ... + w_T)
  symbol s codes the interval [c_s, c_{s+1}) of [0, 2**24), c_s = floor((w_0 + ... + w_{s-1}) * scale) + s,
  c_{T+1} = 2**24
(``value_cdf`` computes the same c_s, so the coder may hand each symbol's interval to constriction
directly; it must agree with constriction's Categorical bit for bit).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np

from mdlcodec.codec.arrays import take
from mdlcodec.codec.entropy.activity import ActivityTables
from mdlcodec.codec.entropy.hierarchy import Hierarchy
from mdlcodec.codec.entropy.occupancy import OccupancyTables
from mdlcodec.codec.rate.quantiser import MAX_BIN
from mdlcodec.codec.sparse import SparseCodes

MAX_TABLE_BINS = 4096
"""Widest value table a feature gets; rarer outliers are escaped."""

MAX_COUNT = 1 << 62
"""Largest count (n_samples) tables may hold: sums of counts stay within int64."""

ESCAPE_RAW_BITS = 32

MAX_CDF_BYTES = 64 << 20
"""Largest table of quantised value intervals (``EntropyModel.value_cdf``) a model caches."""


def _bits(p: np.ndarray) -> np.ndarray:
    return -np.log2(p)


def _h2(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits, elementwise (0 at p = 0 and p = 1, which extreme counts round to)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((p > 0) & (p < 1), p * _bits(p) + (1 - p) * _bits(1 - p), 0.0)


@dataclass(eq=False)
class EntropyModel:
    n_samples: int
    active_counts: np.ndarray
    value_lo: np.ndarray
    value_offsets: np.ndarray
    value_counts: np.ndarray
    escape_counts: np.ndarray
    hierarchy: Hierarchy | None = None

    @property
    def d_sae(self) -> int:
        return len(self.active_counts)

    @property
    def table_sizes(self) -> np.ndarray:
        """[d_sae] T_f, bins in each feature's value table (the escape symbol is index T_f)."""
        return np.diff(self.value_offsets)

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(cls, codes: SparseCodes, max_table_bins: int = MAX_TABLE_BINS) -> "EntropyModel":
        """Count activity and value bins of training codes (the training split, quantised)."""
        d = codes.d_sae
        feats, bins = codes.indices.astype(np.int64), codes.bins.astype(np.int64)
        active = np.bincount(feats, minlength=d)
        lo = np.ones(d, dtype=np.int64)
        hi = np.ones(d, dtype=np.int64)
        order = np.lexsort((bins, feats))
        f_sorted, b_sorted = feats[order], bins[order]
        starts = np.flatnonzero(np.r_[True, f_sorted[1:] != f_sorted[:-1]]) if len(f_sorted) else np.zeros(0, int)
        ends = np.r_[starts[1:], len(f_sorted)] if len(f_sorted) else starts
        seen = f_sorted[starts]
        lo[seen], hi[seen] = b_sorted[starts], b_sorted[ends - 1]
        for j in np.flatnonzero(hi[seen] - lo[seen] + 1 > max_table_bins):
            # Too wide: keep the central quantiles, centred window of at most max_table_bins.
            f, seg = seen[j], b_sorted[starts[j]:ends[j]]
            a, b = np.quantile(seg, [0.001, 0.999], method="nearest")
            mid = (int(a) + int(b)) // 2
            lo[f] = max(int(a), mid - max_table_bins // 2)
            hi[f] = min(int(b), lo[f] + max_table_bins - 1)
        sizes = hi - lo + 1
        offsets = np.zeros(d + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        rel = bins - lo[feats]
        inside = (rel >= 0) & (rel < sizes[feats])
        value_counts = np.bincount(offsets[feats[inside]] + rel[inside], minlength=int(offsets[-1]))
        escapes = np.bincount(feats[~inside], minlength=d)
        return cls(codes.n, active.astype(np.int64), lo.astype(np.int32), offsets,
                   value_counts.astype(np.int64), escapes.astype(np.int64))

    def with_hierarchy(self, hierarchy: Hierarchy | None) -> "EntropyModel":
        """The same counts with activity coded under ``hierarchy`` (None: flat), counted on the same codes."""
        if hierarchy is not None and len(hierarchy.parents) != self.d_sae:
            raise ValueError(f"hierarchy has {len(hierarchy.parents)} features, the model {self.d_sae}")
        return EntropyModel(self.n_samples, self.active_counts, self.value_lo, self.value_offsets,
                            self.value_counts, self.escape_counts, hierarchy)

    def _activity_counts(self) -> dict:
        """The counts both versions' activity tables are built from (``ActivityTables.from_counts``)."""
        h = self.hierarchy
        forest = {} if h is None else {"parents": h.parents, "joint_counts": h.joint_counts, "tree": h.kind == "tree"}
        return {"active_counts": self.active_counts, "n_samples": self.n_samples, **forest}

    @cached_property
    def activity_tables(self) -> ActivityTables:
        """The activity tables of format versions 1 and 2 (``activity.py``)."""
        return ActivityTables.from_counts(**self._activity_counts())

    @cached_property
    def occupancy_tables(self) -> OccupancyTables:
        """The activity tables of format version 3 (``occupancy.py``), from the same counts."""
        return OccupancyTables.from_counts(**self._activity_counts())

    # -- storage ---------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"n_samples": np.array([self.n_samples], dtype=np.int64), "active_counts": self.active_counts,
               "value_lo": self.value_lo, "value_offsets": self.value_offsets,
               "value_counts": self.value_counts, "escape_counts": self.escape_counts}
        return out if self.hierarchy is None else {**out, **self.hierarchy.to_arrays()}

    ARRAYS = frozenset({"n_samples", "active_counts", "value_lo", "value_offsets", "value_counts", "escape_counts"})
    """The arrays of ``to_arrays`` (a hierarchy adds ``Hierarchy.ARRAYS``)."""

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "EntropyModel":
        """Inverse of to_arrays, for arrays read from a file: ValueError naming the array if one is
        missing, of another dtype or shape than to_arrays writes, or inconsistent with the others
        (counts beyond n_samples <= MAX_COUNT, a feature's value and escape counts not summing to its
        active count, tables past the int32 bins), all checked before any arithmetic uses them."""
        n = take(a, "n_samples", np.int64, (1,))
        active = take(a, "active_counts", np.int64, (None,))
        d = len(active)
        if d < 1:
            raise ValueError("active_counts is empty")
        lo = take(a, "value_lo", np.int32, (d,))
        offsets = take(a, "value_offsets", np.int64, (d + 1,))
        counts = take(a, "value_counts", np.int64, (None,))
        escapes = take(a, "escape_counts", np.int64, (d,))
        n_samples = int(n[0])
        if not 0 <= n_samples <= MAX_COUNT:
            raise ValueError(f"n_samples = {n_samples} is outside [0, 2**62]")
        if np.any(active < 0) or np.any(active > n_samples):
            raise ValueError("active_counts must lie in [0, n_samples]")
        sizes = np.diff(offsets)
        if offsets[0] != 0 or np.any(sizes < 1) or offsets[-1] != len(counts):
            raise ValueError("value_offsets must rise from 0 by at least 1 per feature to the length of value_counts")
        if np.any(counts < 0) or np.any(counts > n_samples) or np.any(escapes < 0) or np.any(escapes > n_samples):
            raise ValueError("value and escape counts must lie in [0, n_samples]")
        if not np.array_equal(np.add.reduceat(counts, offsets[:-1]) + escapes, active):
            raise ValueError("a feature's value and escape counts do not sum to its active count")
        if np.any(lo.astype(np.int64) + sizes - 1 > MAX_BIN) or np.any(lo < -MAX_BIN):
            raise ValueError(f"value tables reach past the int32 bins (|bin| <= {MAX_BIN})")
        h = Hierarchy.from_arrays(a, d)
        if h is not None:
            child = np.flatnonzero(h.parents >= 0)
            par = h.parents[child]
            joint = h.joint_counts[child]
            if (np.any(joint > active[child]) or np.any(joint > active[par])
                    or np.any(active[child] - joint > n_samples - active[par])):
                raise ValueError("hierarchy joint_counts are inconsistent with active_counts")
        return cls(n_samples, active, lo, offsets, counts, escapes, h)

    def fingerprint(self) -> str:
        """sha256 (hex, first 16 bytes) of the counts: what decoding depends on."""
        h = hashlib.sha256(b"mdlcodec-entropy-model-v1")
        for k, v in self.to_arrays().items():
            h.update(k.encode() + np.ascontiguousarray(v).astype("<i8").tobytes())
        return h.hexdigest()[:32]

    # -- probabilities ---------------------------------------------------------------------------
    @property
    def p_active(self) -> np.ndarray:
        """[d_sae] float64 P(feature active) by the smoothing rule."""
        return (self.active_counts + 0.5) / (self.n_samples + 1.0)

    def value_weights(self, f: int) -> np.ndarray:
        """[T_f + 1] float64 unnormalised weights (count + 1) of feature f's bins, then the escape."""
        s, e = self.value_offsets[f], self.value_offsets[f + 1]
        return np.append(self.value_counts[s:e], self.escape_counts[f]).astype(np.float64) + 1.0

    @cached_property
    def value_models(self) -> list:
        """[d_sae] constriction Categorical of each feature's value symbols (built once)."""
        cat = constriction.stream.model.Categorical
        return [cat(self.value_weights(f), perfect=False) for f in range(self.d_sae)]

    @cached_property
    def value_cdf(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The quantised intervals of every value symbol, by the rule above: (starts [d_sae + 1] int64,
        cdf [sum (T_f + 2)] int64), feature f's c_0 .. c_{T_f + 1} at cdf[starts[f]:starts[f + 1]];
        symbol s of f codes [cdf[starts[f] + s], cdf[starts[f] + s + 1]) of 2**24. None when the
        table would take more than MAX_CDF_BYTES (the coder then uses ``value_models``)."""
        sizes = self.table_sizes + 1  # symbols per feature, the escape included
        starts = np.zeros(self.d_sae + 1, dtype=np.int64)
        np.cumsum(sizes + 1, out=starts[1:])
        if 8 * int(starts[-1]) > MAX_CDF_BYTES:
            return None
        cdf = np.empty(int(starts[-1]), dtype=np.int64)
        for T in np.unique(sizes).tolist():  # features with T symbols: one [g, T] matrix of weights
            feats = np.flatnonzero(sizes == T)
            w = np.empty((len(feats), T))
            w[:, :T - 1] = self.value_counts[self.value_offsets[feats][:, None] + np.arange(T - 1)]
            w[:, T - 1] = self.escape_counts[feats]
            w = w.astype(np.float64) + 1.0  # value_weights, elementwise
            cum = np.cumsum(w, axis=1)  # sequential float64 sums, as constriction's
            scale = float((1 << 24) - T) / cum[:, -1:]
            c = np.empty((len(feats), T + 1), dtype=np.int64)
            c[:, 0] = 0
            c[:, 1:T] = (cum[:, :T - 1] * scale).astype(np.int64) + np.arange(1, T)
            c[:, T] = 1 << 24
            cdf[starts[feats][:, None] + np.arange(T + 1)] = c
        return starts, cdf

    @cached_property
    def _value_log_probs(self) -> tuple[np.ndarray, np.ndarray]:
        """Bits of every table symbol ([sum T_f]) and of every escape ([d_sae]), under the rule."""
        sizes = self.table_sizes
        total = np.add.reduceat(self.value_counts, self.value_offsets[:-1]) + sizes + self.escape_counts + 1
        table_bits = _bits((self.value_counts + 1.0) / np.repeat(total, sizes))
        escape_bits = _bits((self.escape_counts + 1.0) / total)
        return table_bits, escape_bits

    def value_symbols(self, feats: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Symbol index of each (feature, bin): bin - value_lo, or T_f (escape) outside the table."""
        rel = bins.astype(np.int64) - self.value_lo[feats]
        size = self.table_sizes[feats]
        return np.where((rel >= 0) & (rel < size), rel, size).astype(np.int32)

    def value_bits(self, feats: np.ndarray, bins: np.ndarray) -> float:
        """Ideal code length in bits of these active values under the model (escapes' raw bits included)."""
        sym = self.value_symbols(feats, bins)
        table_bits, escape_bits = self._value_log_probs
        esc = sym == self.table_sizes[feats]
        bits = table_bits[self.value_offsets[feats[~esc]] + sym[~esc]].sum()
        return float(bits + (escape_bits[feats[esc]] + ESCAPE_RAW_BITS).sum())

    def activity_entropy(self) -> float:
        """The activity code's expected bits per sample under the model: sum_f H(p_f) when flat; with a
        hierarchy, sum_roots H(p_f) + sum_children [P(g) H(f | g) + (1 - P(g)) H(f | not g)], g the parent
        (a tree's H(f | not g) is 0), probabilities by the smoothing rule, P(g) the parent's marginal."""
        p = self.p_active
        h = self.hierarchy
        if h is None:
            return float(_h2(p).sum())
        a, n, g = self.active_counts, self.n_samples, h.parents
        root = g < 0
        child = ~root
        pg, ag = p[g[child]], a[g[child]]
        on = _h2((h.joint_counts[child] + 0.5) / (ag + 1.0))
        off = 0.0 if h.kind == "tree" else _h2((a[child] - h.joint_counts[child] + 0.5) / (n - ag + 1.0))
        return float(_h2(p[root]).sum() + (pg * on + (1 - pg) * off).sum())

    def expected_bits_per_sample(self) -> dict[str, float]:
        """The model's own entropy in bits per sample: activity (``activity_entropy``), values sum_f p_f H(value_f)."""
        p = self.p_active
        activity = self.activity_entropy()
        table_bits, escape_bits = self._value_log_probs
        sizes = self.table_sizes
        total = np.add.reduceat(self.value_counts, self.value_offsets[:-1]) + sizes + self.escape_counts + 1
        probs = (self.value_counts + 1.0) / np.repeat(total, sizes)
        h = np.add.reduceat(probs * table_bits, self.value_offsets[:-1])
        pe = (self.escape_counts + 1.0) / total
        h = h + pe * (escape_bits + ESCAPE_RAW_BITS)
        return {"activity": activity, "values": float((p * h).sum()), "total": activity + float((p * h).sum())}
