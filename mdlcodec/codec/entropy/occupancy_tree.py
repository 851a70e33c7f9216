"""The trees and tables of format version 3's activity coding (``occupancy``'s docstring is the
specification, integer rule included): a layer's 8-ary tree over its features with every node's
interval bounds (``LayerTree``), the nodes above the leaves masked in a chunk with their pattern
rows derived a batch at a time (``Context``), and an entropy model's trees and forest children
(``OccupancyTables``). ``occupancy`` codes a chunk's symbols with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import constriction
import numpy as np

from mdlcodec.codec.entropy.activity import _U_ONE, FIXED_BITS, _mul, _prob_solo, leaf_values
from mdlcodec.core.forest import forest_depths

EXACT_BELOW = _U_ONE - np.uint64(1 << 26)
"""A child's u at or below this (q >= 2**-6) is masked in its layer's tree where its parent is active."""

TOTAL = 1 << FIXED_BITS
"""The sum of every node's interval widths (2**24)."""


def bit_rows(probs: np.ndarray) -> np.ndarray:
    """[m, 2] float64 rows (1 - p, p): constriction's Categorical (perfect=False) over {0, 1} with
    these rows quantises every 24-bit fixed-point p exactly as its Bernoulli(perfect=False) does (the
    same intervals, so the same stream; tests/codec/entropy/test_fast_coder.py checks all 2**24 - 1 of them),
    and codes them about twice as fast."""
    rows = np.empty((len(probs), 2))
    rows[:, 1] = probs
    np.subtract(1.0, probs, out=rows[:, 0])
    return rows


def level_bits(m: int) -> list[int]:
    """[b_0 = 0, b_1 = r, ..., b_J = L]: the bits of the node positions at each level of a tree over m leaves."""
    L = max(1, (m - 1).bit_length())
    r = (L - 1) % 3 + 1
    return [0, *range(r, L + 1, 3)]


def pattern_products(u_children: np.ndarray) -> np.ndarray:
    """[n, 2**k] uint64 v_M of each node from its k children's u [n, k] (the rule above)."""
    n, k = u_children.shape
    v = np.full((n, 1), _U_ONE, dtype=np.uint64)
    for c in range(k):
        uc = u_children[:, c:c + 1]
        v = np.concatenate([_mul(v, uc), _mul(v, _U_ONE - uc)], axis=1)
    return v


def pattern_weights(v: np.ndarray, root: bool) -> np.ndarray:
    """[n, 2**k] int64 integer weights w_M of each node's masks from its products v (the rule above)."""
    n, k = v.shape
    codable = v.copy()
    if not root:
        codable[:, 0] = 0
    total = np.uint64(TOTAL - k)
    V = codable.sum(axis=1, keepdims=True)
    w = np.where(V > 0, codable * total // np.maximum(V, np.uint64(1)), np.uint64(0)).astype(np.int64)
    first = 0 if root else 1
    best = np.argmax(codable[:, first:], axis=1) + first
    w[np.arange(n), best] += int(total) - w.sum(axis=1)
    return w


@dataclass
class LayerTree:
    """The tree of one layer: features [m] int64, its features' global ids ascending; levels b_0 .. b_J
    (``level_bits``); u[j] [2**b_j] uint64, every node's u (j = J: the leaves); cdf[j]
    [2**b_j, 2**k_j + 1] int32, the interval bounds c_M of every node of level j < J; exact [m] bool,
    the leaves masked where their parent is active (None for layer 0). Constriction's model of each
    node is built when first used (``model``)."""

    features: np.ndarray
    levels: list[int]
    u: list[np.ndarray]
    cdf: list[np.ndarray]
    exact: np.ndarray | None = None
    _models: list = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, features: np.ndarray, u_leaf: np.ndarray, child_layer: bool = False) -> "LayerTree":
        """The tree over ``features`` with leaf values u_leaf [m] (a child layer's leaves may be masked)."""
        m = len(features)
        levels = level_bits(m)
        u = np.full(1 << levels[-1], _U_ONE, dtype=np.uint64)
        u[:m] = u_leaf
        us, cdf = [u], []
        for j in range(len(levels) - 2, -1, -1):
            s = levels[j + 1] - levels[j]
            v = pattern_products(us[0].reshape(-1, 1 << s))
            c = np.zeros((len(v), v.shape[1] + 1), dtype=np.int32)
            np.cumsum(pattern_weights(v, root=j == 0) + 1, axis=1, out=c[:, 1:], dtype=np.int32)
            us.insert(0, v[:, 0])
            cdf.insert(0, c)
        exact = (np.asarray(u_leaf) <= EXACT_BELOW) if child_layer else None
        return cls(np.asarray(features, np.int64), levels, us, cdf, exact, [[None] * len(c) for c in cdf])

    def model(self, j: int, p: int):
        """constriction's Categorical of node p of level j (built once)."""
        m = self._models[j][p]
        if m is None:
            w = np.diff(self.cdf[j][p]).astype(np.float64) - 1.0
            m = self._models[j][p] = constriction.stream.model.Categorical(w, perfect=False)
        return m

    def context(self, masked: np.ndarray) -> "Context | None":
        """The nodes above the masked leaves (sorted keys (sample << L) | position) and their values
        with those leaves at 2**32; None when nothing is masked."""
        if not len(masked):
            return None
        levels = self.levels
        ctx = Context(self, [np.zeros(0, dtype=np.int64)] * len(levels), [np.zeros(0, dtype=np.uint64)] * len(levels))
        ctx.keys[-1], ctx.u[-1] = masked, np.full(len(masked), _U_ONE, dtype=np.uint64)
        for j in range(len(levels) - 2, -1, -1):
            nodes = np.unique(ctx.keys[j + 1] >> (levels[j + 1] - levels[j]))
            u = np.empty(len(nodes), dtype=np.uint64)
            for a in range(0, len(nodes), _BATCH):
                u_child = ctx.children_u(j, nodes[a:a + _BATCH])
                acc = np.full(len(u_child), _U_ONE, dtype=np.uint64)
                for c in range(u_child.shape[1]):
                    acc = _mul(acc, u_child[:, c])
                u[a:a + _BATCH] = acc
            ctx.keys[j], ctx.u[j] = nodes, u
        return ctx


_BATCH = 1 << 13
"""Nodes above masked leaves handled at once (their pattern rows take 2 KiB each)."""


@dataclass
class Context:
    """The nodes of a layer's tree above the leaves masked in a chunk: keys[j] sorted keys
    (sample << b_j) | position of those of level j (j = J: the masked leaves), u[j] their values."""

    tree: LayerTree
    keys: list[np.ndarray]
    u: list[np.ndarray]

    def children_u(self, j: int, nodes: np.ndarray) -> np.ndarray:
        """[m, k_j] uint64 the children's values of the nodes (sorted keys at level j), masked leaves at 2**32."""
        levels = self.tree.levels
        s = levels[j + 1] - levels[j]
        u_child = self.tree.u[j + 1][((nodes[:, None] << s) | np.arange(1 << s)) & ((1 << levels[j + 1]) - 1)]
        below = self.keys[j + 1]
        lo, hi = np.searchsorted(below, [nodes[0] << s, (nodes[-1] + 1) << s]) if len(nodes) else (0, 0)
        below, u_below = below[lo:hi], self.u[j + 1][lo:hi]
        hit, at = member(nodes, below >> s)
        u_child[at[hit], below[hit] & ((1 << s) - 1)] = u_below[hit]
        return u_child

    def rows(self, j: int, nodes: np.ndarray, reverse: bool = False) -> Iterator[tuple[slice, np.ndarray]]:
        """(slice of nodes, [len, 2**k_j] float64 their pattern weights) in batches of _BATCH nodes, the
        last batch first with ``reverse``."""
        starts = range(0, len(nodes), _BATCH)
        for a in reversed(starts) if reverse else starts:
            u_child = self.children_u(j, nodes[a:a + _BATCH])
            yield slice(a, a + _BATCH), pattern_weights(pattern_products(u_child), root=j == 0).astype(np.float64)


@dataclass
class OccupancyTables:
    """The trees of an entropy model's layers and its forest's children: layers (one when flat);
    layer_of, local [d_sae] int64, each feature's layer and position in it. Under a forest: parents
    [d_sae] int64 (-1: root); children (each feature's children ascending) as CSR (child_ptr,
    children), and so are those coded with one bit each (bit_ptr, bit_children: the children of the
    features of at most HUB_CHILDREN children) and those masked in their layer's tree (mask_ptr,
    mask_children); slot [d_sae], each child's place among its parent's children; on_prob [d_sae]
    float64 and u_on [d_sae] uint64, P(f | parent active) as a bit receives it (24-bit fixed point)
    and as a leaf of its parent's own tree (``hub_tree``) does."""

    layers: list[LayerTree]
    layer_of: np.ndarray
    local: np.ndarray
    parents: np.ndarray | None = None
    child_ptr: np.ndarray | None = None
    children: np.ndarray | None = None
    bit_ptr: np.ndarray | None = None
    bit_children: np.ndarray | None = None
    mask_ptr: np.ndarray | None = None
    mask_children: np.ndarray | None = None
    slot: np.ndarray | None = None
    on_prob: np.ndarray | None = None
    u_on: np.ndarray | None = None
    _hub_trees: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_counts(cls, active_counts: np.ndarray, n_samples: int, parents: np.ndarray | None = None,
                    joint_counts: np.ndarray | None = None, tree: bool = False) -> "OccupancyTables":
        """Tables from the integer counts of ``ActivityTables.from_counts`` (the same arguments)."""
        a = np.asarray(active_counts, np.int64)
        d = len(a)
        if parents is None:
            flat = LayerTree.build(np.arange(d), leaf_values(a, np.full(d, n_samples)))
            return cls([flat], np.zeros(d, dtype=np.int64), np.arange(d, dtype=np.int64))
        parents, joint = np.asarray(parents, np.int64), np.asarray(joint_counts, np.int64)
        depth = forest_depths(parents)
        local = np.zeros(d, dtype=np.int64)
        layers = []
        for lvl in range(int(depth.max()) + 1):
            feats = np.flatnonzero(depth == lvl)
            local[feats] = np.arange(len(feats))
            if lvl == 0:
                u = leaf_values(a[feats], np.full(len(feats), n_samples))
            elif tree:
                u = np.full(len(feats), _U_ONE, dtype=np.uint64)
            else:
                u = leaf_values(a[feats] - joint[feats], n_samples - a[parents[feats]])
            layers.append(LayerTree.build(feats, u, child_layer=lvl > 0))
        child = np.flatnonzero(parents >= 0)
        child = child[np.argsort(parents[child], kind="stable")]  # by parent, ascending within one
        counts = np.bincount(parents[child], minlength=d)
        slot = np.zeros(d, dtype=np.int64)
        slot[child] = np.arange(len(child)) - np.repeat(np.cumsum(counts) - counts, counts)
        u_on = np.full(d, _U_ONE, dtype=np.uint64)
        u_on[child] = leaf_values(joint[child], a[parents[child]])
        on = np.full(d, 0.5)
        on[child] = _prob_solo(_U_ONE - u_on[child])
        exact = np.zeros(d, dtype=bool)
        for lv in layers[1:]:
            exact[lv.features] = lv.exact
        small = counts[parents[child]] <= HUB_CHILDREN
        return cls(layers, depth, local, parents, *_csr(child, parents, d), *_csr(child[small], parents, d),
                   *_csr(child[exact[child]], parents, d), slot, on, u_on)

    def hub_tree(self, g: int) -> LayerTree:
        """The tree of feature g's children (g has more than HUB_CHILDREN), leaves P(c | g active) (built once)."""
        t = self._hub_trees.get(g)
        if t is None:
            kids = self.children[self.child_ptr[g]:self.child_ptr[g + 1]]
            t = self._hub_trees[g] = LayerTree.build(kids, self.u_on[kids])
        return t

    def hubs(self, feats: np.ndarray) -> np.ndarray:
        """[len(feats)] bool: which of the features have their children coded by their own tree."""
        return self.child_ptr[feats + 1] - self.child_ptr[feats] > HUB_CHILDREN

    @staticmethod
    def pairs(ptr: np.ndarray, kids: np.ndarray, rows: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, children) of the active (rows, feats) in the CSR (ptr, kids), in (row, feature, child)
        order when the pairs are sorted by (row, feature)."""
        start, stop = ptr[feats], ptr[feats + 1]
        counts = stop - start
        offs = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        return np.repeat(rows, counts), kids[offs]

    def enumerated(self, feats: np.ndarray) -> int:
        """How many children the active features ``feats`` make a chunk list (bits and masked leaves)."""
        return int((self.bit_ptr[feats + 1] - self.bit_ptr[feats]).sum()
                   + (self.mask_ptr[feats + 1] - self.mask_ptr[feats]).sum())


HUB_CHILDREN = 8
"""A feature with more children codes them with its own tree where it is active, not a bit each."""


def _csr(child: np.ndarray, parents: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr [d + 1], children) of the children ``child`` (sorted by parent, ascending within one)."""
    ptr = np.zeros(d + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents[child], minlength=d), out=ptr[1:])
    return ptr, child.astype(np.int64)


def member(keys: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each of want is in the sorted keys, its index there where it is)."""
    if not len(keys):
        return np.zeros(len(want), dtype=bool), np.zeros(len(want), dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return keys[at] == want, at
