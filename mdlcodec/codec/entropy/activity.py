"""Which features are active, format versions 1 and 2: coded by splitting the feature range in halves,
layer by layer of a feature forest. (Version 3 codes occupancy patterns instead, ``occupancy.py``,
which takes this module's integer rule for a leaf's probability, ``leaf_values``.)

Flat model (every feature a root). The features 0..d_sae-1 are the leaves of a complete binary
tree (heap numbering: root 1, children of node h are 2h and 2h+1, leaf of feature f is P + f with
P = 2**L >= d_sae; leaves past d_sae are padding, never active). A node is active in a sample when
any feature below it is. For each sample the coder sends: the root's bit; then, for every active
node, its left child's bit, and its right child's bit only if the left child was active (otherwise
the right one must be). With independent features of probability p_f, every coded bit has an
exact conditional probability:

    q_h = P(node h active) = 1 - prod_{f below h} (1 - p_f)
    root:            P = q_1
    left child h:    P(h active | parent active)                    = q_h / q_parent
    right child h:   P(h active | parent active, left sibling active) = q_h     (independence)

so by the chain rule a sample costs exactly sum_f H(p_f) bits in expectation, with O(L0 log d_sae)
coded bits instead of d_sae.

Forest (``parents[f]`` = f's parent, -1 for a root). Features are grouped in layers by depth; layer
l is coded after layer l-1 with its own binary tree over its features (ascending ids), exactly as
above, but each leaf's probability depends on whether its parent fired in this sample:
p_f = P(f | parent active) or P(f | parent inactive) (0 in a "tree" model, where a child never
fires without its parent). Node values differ from the layer's base table (every parent inactive)
only above the children of active parents, so only those nodes are recomputed, per sample. A
sample costs sum_roots H(p_f) + sum_children H(f | parent) bits in expectation (a tree model:
sum_children P(parent active) H(p_f | parent active)). The flat model is the one-layer case.

Determinism. Probabilities come from integer counts by integer arithmetic only. A leaf with a of
N samples active gets (1 - p) in 32-bit fixed point:
  u = floor((2N + 1 - 2a) * 2**32 / (2N + 2))            (Krichevsky-Trofimov p = (a + 1/2) / (N + 1))
  u = 2**32  for padding, and for a tree model's child whose parent is inactive
  u_h = floor(u_2h * u_2h+1 / 2**32)                      (1 - q_h), q_h = 2**32 - u_h
  coded probability (24-bit fixed point, clamped to [1, 2**24 - 1]):
      h even (left child): floor(q_h * 2**24 / q_parent)   (1 where q_parent = 0)
      h odd (root, right): floor(q_h / 2**8)
The coder receives prob / 2**24, an exactly representable float64.

Coding order for a chunk of n samples, layer after layer (breadth first, so each level is one
vectorised call): the layer's root bits of all n samples; then for each level from the top, the
left bits of all active nodes at that level in (sample, node) order, then the right bits of those
whose left bit was 1. A node at level l of sample r has the key (r << l) | position; its parent's
key is key >> 1.
"""

from __future__ import annotations

from dataclasses import dataclass

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
        u values, index at level l + 1 of each one's left child, of its right child, -1 where that
        child is not a context node) of the nodes above a leaf in on_keys; None when there are none."""
        if not len(on_keys):
            return None
        L = self.levels
        none = np.zeros(0, dtype=np.int64)
        out: list = [None] * (L + 1)
        out[L] = (on_keys, self.u_on[on_keys & ((1 << L) - 1)], none, none)
        keys, u = out[L][:2]
        for lvl in range(L - 1, -1, -1):
            up = keys >> 1
            new = np.empty(len(up), dtype=bool)
            new[:1] = True
            np.not_equal(up[1:], up[:-1], out=new[1:])
            first = np.flatnonzero(new)  # each parent's first child; its last is before the next first
            last = np.empty_like(first)
            last[:-1] = first[1:] - 1
            last[-1] = len(keys) - 1
            parents = up[first]
            left_idx = np.where(keys[first] & 1, -1, first)
            right_idx = np.where(keys[last] & 1, last, -1)
            u_left, u_right = self._children(_heap(lvl + 1, parents << 1), left_idx, right_idx, u)
            keys, u = parents, _mul(u_left, u_right)
            out[lvl] = (keys, u, left_idx, right_idx)
        return out

    def _children(self, h_left: np.ndarray, left_idx: np.ndarray, right_idx: np.ndarray,
                  u_next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """u of the two children of nodes whose left child has heap index h_left: the context's value
        where the child's index into u_next (that level's context values) is >= 0, else the base table's."""
        u_left = np.where(left_idx >= 0, u_next[np.maximum(left_idx, 0)] if len(u_next) else 0, self.u[h_left])
        u_right = np.where(right_idx >= 0, u_next[np.maximum(right_idx, 0)] if len(u_next) else 0, self.u[h_left + 1])
        return u_left, u_right

    def root_values(self, ctx: list | None, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """[n] u of every sample's root node, and [n] each root's index in the context (-1: none)."""
        u = np.full(n, self.u[1])
        if ctx is None:
            return u, None
        keys, cu = ctx[0][:2]
        u[keys] = cu
        index = np.full(n, -1, dtype=np.int64)
        index[keys] = np.arange(len(keys))
        return u, index

    def child_values(self, ctx: list, lvl: int, h_left: np.ndarray, index: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """u of the left and of the right child of active nodes at level lvl (their left children's
        heap indices h_left, their context indices ``index``, -1 for none), and the children's
        context indices."""
        _, _, left_idx, right_idx = ctx[lvl]
        inside = index >= 0
        at = np.maximum(index, 0)
        left = np.where(inside, left_idx[at], -1) if len(left_idx) else np.full(len(index), -1)
        right = np.where(inside, right_idx[at], -1) if len(right_idx) else np.full(len(index), -1)
        u_left, u_right = self._children(h_left, left, right, ctx[lvl + 1][1])
        return u_left, u_right, left, right


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


def _bit_length(x: np.ndarray) -> np.ndarray:
    """[m] int64: bit length of positive int64 values (frexp's exponent, one less where rounding
    to float64 reached the next power of two)."""
    b = np.minimum(np.frexp(x.astype(np.float64))[1], 63).astype(np.int64)
    return b - ((np.int64(1) << (b - 1)) > x)


def _level_starts(keys: np.ndarray, L: int) -> list[np.ndarray]:
    """For each level l < L, the positions in the sorted leaf keys where a node of level l starts.

    The active nodes of level l are the distinct keys >> (L - l); in the sorted keys each one's leaves
    are a run, which starts where the key differs from the previous one in a bit at or above L - l.
    """
    m = len(keys)
    level = np.empty(m, dtype=np.int32)  # the highest level whose node changes at key i (0: a new root)
    level[:1] = 0
    level[1:] = L + 1 - np.minimum(_bit_length(keys[1:] ^ keys[:-1]), L + 1)
    out = [np.zeros(0, dtype=np.int64)] * L
    at = np.flatnonzero(level < L) if L else None
    for lvl in range(L - 1, -1, -1):  # each level's starts are a subset of the next one's
        at = at[level[at] <= lvl]
        out[lvl] = at
    return out


def _layer_decisions(layer: Layer, ctx: list | None, keys: np.ndarray, n: int, steps: list) -> None:
    """Append the bits of one layer: keys [m] sorted leaf keys (row << L) | position of its active features.

    A node's left child is active iff its run's first key has bit L - l - 1 clear, its right child
    iff the run's last key has it set. Without context each bit's probability is the base table's
    at the child's heap index, which is the leaf's heap index (P + position) >> (L - l - 1).
    """
    L = layer.levels
    m = len(keys)
    root = np.zeros(n, dtype=np.int32)
    root[keys >> L] = 1
    u_root, c_root = layer.root_values(ctx, n)
    steps.append((root, _prob_solo(_U_ONE - u_root)))
    if not L:
        return
    heap = ((keys & ((1 << L) - 1)) | (1 << L)).astype(np.int32 if L < 31 else np.int64)
    level_starts = _level_starts(keys, L)
    if ctx is not None:  # each active node's u and context index, carried down level by level
        active_rows = keys[level_starts[0]] >> L
        u_par, c_par = u_root[active_rows], c_root[active_rows]
    for lvl, starts in enumerate(level_starts):
        last = np.empty_like(starts)
        last[:-1] = starts[1:] - 1
        last[-1:] = m - 1
        shift = L - lvl - 1
        child = heap[starts] >> shift  # heap index of the first leaf's ancestor at level lvl + 1
        left_on = (child & 1) == 0
        if ctx is None:
            p_left = layer.prob[child & -2]
            p_right = layer.prob[child[left_on] | 1]
            steps.append((left_on.astype(np.int32), p_left))
            steps.append((((heap[last[left_on]] >> shift) & 1).astype(np.int32, copy=False), p_right))
            continue
        right_on = ((heap[last] >> shift) & 1) == 1
        u_left, u_right, c_left, c_right = layer.child_values(ctx, lvl, child & -2, c_par)
        p_left, p_right = _prob_left(_U_ONE - u_left, _U_ONE - u_par), _prob_solo(_U_ONE - u_right[left_on])
        on = np.stack([left_on, right_on], axis=1)
        u_par = np.stack([u_left, u_right], axis=1)[on]
        c_par = np.stack([c_left, c_right], axis=1)[on]
        steps.append((left_on.astype(np.int32), p_left))
        steps.append((right_on[left_on].astype(np.int32), p_right))


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


def decode_activity(decode_bits, n: int, tables: ActivityTables, d_sae: int,
                    max_active: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of activity_decisions. decode_bits(probs) -> [len(probs)] int32 reads bits in order.

    Returns rows [nnz] int64 and features [nnz] int32, sorted by (row, feature). ValueError as soon
    as the nodes on at a level (never fewer than the active latents below them) pass ``max_active``.
    """
    all_rows, all_feats = [], []
    total = 0
    prev_rows = prev_feats = np.zeros(0, dtype=np.int64)
    for layer in tables.layers:
        L = layer.levels
        ctx = layer.context(layer.on_keys(prev_rows, tables.local[prev_feats]))
        u_root, c_root = layer.root_values(ctx, n)
        keys = np.flatnonzero(decode_bits(_prob_solo(_U_ONE - u_root))).astype(np.int64)
        if ctx is not None:
            u_par, c_par = u_root[keys], c_root[keys]
        for lvl in range(L):
            h_left = ((keys << 1) & ((2 << lvl) - 1)) | (2 << lvl)
            if ctx is None:
                p_left = layer.prob[h_left]
            else:
                u_left, u_right, c_left, c_right = layer.child_values(ctx, lvl, h_left, c_par)
                p_left = _prob_left(_U_ONE - u_left, _U_ONE - u_par)
            left_on = decode_bits(p_left).astype(bool)
            right_on = ~left_on
            if ctx is None:
                p_right = layer.prob[h_left[left_on] | 1]
            else:
                p_right = _prob_solo(_U_ONE - u_right[left_on])
            right_on[left_on] = decode_bits(p_right).astype(bool)
            n_children = left_on.astype(np.int64) + right_on
            children = np.repeat(keys << 1, n_children)  # each parent's children in order: left, then right
            children[(np.cumsum(n_children) - 1)[right_on]] += 1
            if ctx is not None:
                on = np.stack([left_on, right_on], axis=1)
                u_par = np.stack([u_left, u_right], axis=1)[on]
                c_par = np.stack([c_left, c_right], axis=1)[on]
            keys = children
            if max_active is not None and total + len(keys) > max_active:
                raise ValueError(f"more than {max_active:,} active latents in one chunk, beyond the format's limit")
        total += len(keys)
        pos = keys & ((1 << L) - 1)
        if len(pos) and pos.max() >= len(layer.features):
            raise ValueError("decoded a padding feature: the stream does not match the model")
        prev_rows, prev_feats = keys >> L, layer.features[pos]
        all_rows.append(prev_rows)
        all_feats.append(prev_feats)
    rows, feats = np.concatenate(all_rows), np.concatenate(all_feats)
    if len(tables.layers) > 1:  # merge the layers' sorted runs (timsort finds them)
        order = np.argsort(rows * d_sae + feats, kind="stable")
        rows, feats = rows[order], feats[order]
    return rows, feats.astype(np.int32)
