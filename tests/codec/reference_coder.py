"""Test-only reference: the chunk coder as it was before issue 13 (one constriction call per active
feature and per activity step, Bernoulli bits), kept verbatim so that the fast coder in
mdlcodec/codec/format/bitstream.py can be compared with it byte for byte. Not part of the package."""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.forest import forest_depths

FIXED_BITS = 24
_ONE = 1 << 32
_U_ONE = np.uint64(_ONE)


def leaf_values(active: np.ndarray, total: np.ndarray) -> np.ndarray:
    """[m] uint64: 1 - (a + 1/2) / (N + 1) in 32-bit fixed point, for a of N samples active."""
    return np.array([((2 * int(n) + 1 - 2 * int(a)) << 32) // (2 * int(n) + 2) for a, n in zip(active, total)],
                    dtype=np.uint64).reshape(len(active))


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """floor(a * b / 2**32) for a, b in [0, 2**32] (uint64; the one overflowing case is 2**32 * 2**32)."""
    return np.where((a == _U_ONE) & (b == _U_ONE), _U_ONE, (a * b) >> np.uint64(32))


def _prob_left(q: np.ndarray, q_parent: np.ndarray) -> np.ndarray:
    fixed = np.where(q_parent > 0, (q << np.uint64(FIXED_BITS)) // np.maximum(q_parent, np.uint64(1)), 1)
    return np.clip(fixed.astype(np.int64), 1, (1 << FIXED_BITS) - 1).astype(np.float64) / (1 << FIXED_BITS)


def _prob_solo(q: np.ndarray) -> np.ndarray:
    fixed = (q >> np.uint64(32 - FIXED_BITS)).astype(np.int64)
    return np.clip(fixed, 1, (1 << FIXED_BITS) - 1).astype(np.float64) / (1 << FIXED_BITS)


def _heap(lvl: int, keys: np.ndarray) -> np.ndarray:
    return (1 << lvl) | (keys & ((1 << lvl) - 1))


@dataclass(frozen=True)
class Layer:
    """The features of one depth of the forest and the tables that code their activity.

    features [m] int64 ascending global ids; levels L (P = 2**L >= m leaves); u [2P] uint64, each
    node's 1 - q_h with every leaf in its base context (index 0 unused); prob [2P] float64, the
    probability each node's bit is coded with in that context; u_on [m] uint64, a leaf's value when
    its parent is active (None for the roots); child_ptr [m_prev + 1] and child_local: the layer's
    children (as leaf positions) of every feature of the layer above, by its position there, CSR
    (None for the roots), so the tables of a whole forest take O(d_sae) memory.
    """

    features: np.ndarray
    levels: int
    u: np.ndarray
    prob: np.ndarray
    u_on: np.ndarray | None = None
    child_ptr: np.ndarray | None = None
    child_local: np.ndarray | None = None

    @classmethod
    def build(cls, features: np.ndarray, u_leaf: np.ndarray, u_on: np.ndarray | None = None,
              parents: np.ndarray | None = None, n_parents: int = 0) -> "Layer":
        """parents [m]: each feature's parent as its position in the layer above, which has n_parents."""
        m = len(features)
        levels = max(0, (m - 1).bit_length())
        size = 1 << levels
        u = np.full(2 * size, _U_ONE, dtype=np.uint64)
        u[size:size + m] = u_leaf
        for lvl in range(levels - 1, -1, -1):
            h = np.arange(1 << lvl, 2 << lvl)
            u[h] = _mul(u[2 * h], u[2 * h + 1])
        q = _U_ONE - u
        prob = np.zeros(2 * size)
        prob[1] = _prob_solo(q[1:2])[0]
        left = np.arange(2, 2 * size, 2)
        prob[left] = _prob_left(q[left], q[left >> 1])
        prob[left + 1] = _prob_solo(q[left + 1])
        child_ptr = child_local = None
        if parents is not None:
            order = np.argsort(parents, kind="stable")
            child_local = order.astype(np.int64)
            child_ptr = np.zeros(n_parents + 1, dtype=np.int64)
            np.cumsum(np.bincount(parents, minlength=n_parents), out=child_ptr[1:])
        return cls(np.asarray(features, np.int64), levels, u, prob, u_on, child_ptr, child_local)

    def on_keys(self, rows: np.ndarray, parent_feats: np.ndarray) -> np.ndarray:
        """Leaf keys (sorted) of this layer's children of the active (row, parent) pairs, each parent
        given by its position in the layer above."""
        if self.child_ptr is None or not len(rows):
            return np.zeros(0, dtype=np.int64)
        start, stop = self.child_ptr[parent_feats], self.child_ptr[parent_feats + 1]
        counts = stop - start
        if not counts.sum():
            return np.zeros(0, dtype=np.int64)
        offs = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return np.sort((np.repeat(rows, counts) << self.levels) | self.child_local[offs])

    def context(self, on_keys: np.ndarray) -> list | None:
        """Per-sample node values that differ from the base table: for each level l, (sorted keys,
        u values) of the nodes above a leaf in on_keys; None when there are none."""
        if not len(on_keys):
            return None
        L = self.levels
        out: list = [None] * (L + 1)
        out[L] = (on_keys, self.u_on[on_keys & ((1 << L) - 1)])
        keys = on_keys
        for lvl in range(L, 0, -1):
            keys = np.unique(keys >> 1)
            out[lvl - 1] = (keys, _mul(self._u(out, lvl, keys << 1), self._u(out, lvl, (keys << 1) | 1)))
        return out

    def _u(self, ctx: list | None, lvl: int, keys: np.ndarray) -> np.ndarray:
        base = self.u[_heap(lvl, keys)]
        if ctx is None or not len(keys):
            return base
        ck, cu = ctx[lvl]
        i = np.minimum(np.searchsorted(ck, keys), len(ck) - 1)
        return np.where(ck[i] == keys, cu[i], base)

    def root_probs(self, ctx: list | None, n: int) -> np.ndarray:
        if ctx is None:
            return np.full(n, self.prob[1])
        return _prob_solo(_U_ONE - self._u(ctx, 0, np.arange(n, dtype=np.int64)))

    def child_probs(self, ctx: list | None, lvl: int, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of the left and of the right child's bit of active nodes (keys at level lvl)."""
        if ctx is None:
            h_left = _heap(lvl + 1, parents << 1)
            return self.prob[h_left], self.prob[h_left + 1]
        q_par = _U_ONE - self._u(ctx, lvl, parents)
        q_left = _U_ONE - self._u(ctx, lvl + 1, parents << 1)
        q_right = _U_ONE - self._u(ctx, lvl + 1, (parents << 1) | 1)
        return _prob_left(q_left, q_par), _prob_solo(q_right)


@dataclass(frozen=True)
class ActivityTables:
    """The layers of the forest (one layer when the model is flat) and each feature's place in them."""

    layers: list[Layer]
    layer_of: np.ndarray  # [d_sae] int64
    local: np.ndarray     # [d_sae] int64, position of each feature in its layer

    @classmethod
    def from_counts(cls, active_counts: np.ndarray, n_samples: int, parents: np.ndarray | None = None,
                    joint_counts: np.ndarray | None = None, tree: bool = False) -> "ActivityTables":
        """Tables from integer counts. active_counts [d_sae]: samples (of n_samples) with f active;
        parents [d_sae] (-1: root; depths must be finite); joint_counts [d_sae]: samples with f and
        its parent both active; tree: a child never fires without its parent (P = 0 then)."""
        a = np.asarray(active_counts, np.int64)
        d = len(a)
        if parents is None:
            parents = np.full(d, -1, dtype=np.int64)
            joint_counts = np.zeros(d, dtype=np.int64)
        parents, joint = np.asarray(parents, np.int64), np.asarray(joint_counts, np.int64)
        depth = forest_depths(parents)
        layer_of, local = depth, np.zeros(d, dtype=np.int64)
        layers = []
        for lvl in range(int(depth.max()) + 1 if d else 1):
            feats = np.flatnonzero(depth == lvl)
            local[feats] = np.arange(len(feats))
            if lvl == 0:
                layers.append(Layer.build(feats, leaf_values(a[feats], np.full(len(feats), n_samples))))
                continue
            par = parents[feats]
            on = leaf_values(joint[feats], a[par])
            off = (np.full(len(feats), _U_ONE, dtype=np.uint64) if tree
                   else leaf_values(a[feats] - joint[feats], n_samples - a[par]))
            layers.append(Layer.build(feats, off, on, local[par], len(layers[-1].features)))
        return cls(layers, layer_of, local)


@dataclass
class ActivityDecisions:
    """The coded bits of a chunk in decoding order: a list of (bits [m] int32, probs [m] float64)."""

    steps: list[tuple[np.ndarray, np.ndarray]]

    def ideal_bits(self) -> float:
        """Code length in bits under the model: sum of -log2 P(coded bit)."""
        total = 0.0
        for bits, probs in self.steps:
            total += float(-np.log2(np.where(bits == 1, probs, 1.0 - probs)).sum())
        return total


def _layer_decisions(layer: Layer, ctx: list | None, keys: np.ndarray, n: int, steps: list) -> None:
    """Append the bits of one layer: keys [m] sorted leaf keys (row << L) | position of its active features."""
    L = layer.levels
    level_keys, parent_of = [keys], []  # parent_of[j]: index in level j's keys of each child's parent
    for _ in range(L):
        k = level_keys[-1] >> 1
        new = np.empty(len(k), dtype=bool)
        new[:1] = True
        np.not_equal(k[1:], k[:-1], out=new[1:])
        parent_of.append(np.cumsum(new) - 1)
        level_keys.append(k[new])
    level_keys.reverse()
    parent_of.reverse()
    root = np.zeros(n, dtype=np.int32)
    root[level_keys[0]] = 1
    steps.append((root, layer.root_probs(ctx, n)))
    for lvl in range(L):
        parents, children = level_keys[lvl], level_keys[lvl + 1]
        pidx = parent_of[lvl]
        is_right = (children & 1).astype(bool)
        left_on = np.zeros(len(parents), dtype=bool)
        left_on[pidx[~is_right]] = True
        right_on = np.zeros(len(parents), dtype=bool)
        right_on[pidx[is_right]] = True
        p_left, p_right = layer.child_probs(ctx, lvl, parents)
        steps.append((left_on.astype(np.int32), p_left))
        steps.append((right_on[left_on].astype(np.int32), p_right[left_on]))


def activity_decisions(codes: SparseCodes, tables: ActivityTables) -> ActivityDecisions:
    """The bits that describe which features are active in each sample, in decoding order."""
    rows, feats = codes.rows(), codes.indices.astype(np.int64)
    steps: list = []
    prev_rows = prev_feats = np.zeros(0, dtype=np.int64)
    for i, layer in enumerate(tables.layers):
        mine = tables.layer_of[feats] == i if len(tables.layers) > 1 else slice(None)
        r, f = rows[mine], feats[mine]
        ctx = layer.context(layer.on_keys(prev_rows, tables.local[prev_feats]))
        _layer_decisions(layer, ctx, (r << layer.levels) | tables.local[f], codes.n, steps)
        prev_rows, prev_feats = r, f
    return ActivityDecisions(steps)


def decode_activity(decode_bits, n: int, tables: ActivityTables, d_sae: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of activity_decisions. decode_bits(probs) -> [len(probs)] int32 reads bits in order.

    Returns rows [nnz] int64 and features [nnz] int32, sorted by (row, feature).
    """
    all_rows, all_feats = [], []
    prev_rows = prev_feats = np.zeros(0, dtype=np.int64)
    for layer in tables.layers:
        L = layer.levels
        ctx = layer.context(layer.on_keys(prev_rows, tables.local[prev_feats]))
        keys = np.flatnonzero(decode_bits(layer.root_probs(ctx, n))).astype(np.int64)
        for lvl in range(L):
            p_left, p_right = layer.child_probs(ctx, lvl, keys)
            left_on = decode_bits(p_left).astype(bool)
            right_on = ~left_on
            right_on[left_on] = decode_bits(p_right[left_on]).astype(bool)
            children = np.stack([keys << 1, (keys << 1) | 1], axis=1)
            keys = children[np.stack([left_on, right_on], axis=1)]
        pos = keys & ((1 << L) - 1)
        if len(pos) and pos.max() >= len(layer.features):
            raise ValueError("decoded a padding feature: the stream does not match the model")
        prev_rows, prev_feats = keys >> L, layer.features[pos]
        all_rows.append(prev_rows)
        all_feats.append(prev_feats)
    rows, feats = np.concatenate(all_rows), np.concatenate(all_feats)
    if len(tables.layers) > 1:
        order = np.lexsort((feats, rows))
        rows, feats = rows[order], feats[order]
    return rows, feats.astype(np.int32)


_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)
_UINT16 = constriction.stream.model.Uniform(1 << 16)


class StreamError(ValueError):
    pass


class ReferenceCoder:
    """The old ChunkCoder.encode/decode over the old activity tables (built from the model's counts)."""

    def __init__(self, model):
        self.model = model
        h = model.hierarchy
        self.tables = (ActivityTables.from_counts(model.active_counts, model.n_samples) if h is None else
                       ActivityTables.from_counts(model.active_counts, model.n_samples, h.parents,
                                                  h.joint_counts, tree=h.kind == "tree"))
        cat = constriction.stream.model.Categorical
        self.value_models = [cat(model.value_weights(f), perfect=False) for f in range(model.d_sae)]

    def encode(self, codes: SparseCodes) -> np.ndarray:
        """Codes of one chunk -> compressed uint32 words."""
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
            models, encode = self.value_models, coder.encode_reverse
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
            pos, models, decode = 0, self.value_models, coder.decode
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

