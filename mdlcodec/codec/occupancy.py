"""Which features are active, format version 3: the occupancy patterns of an 8-ary tree over the
features and, under a feature forest, one tree per depth of the forest and one bit for each child
of an active feature.

Tree over m features (a layer). The features (by their position 0 .. m - 1 in the layer) are the
leaves 0 .. 2**L - 1 of a tree, L = max(1, ceil(log2 m)) (leaves past m are padding, never
active). Level j of the tree has 2**b_j nodes, numbered by position; b_0 = 0 (the root),
b_1 = r = ((L - 1) mod 3) + 1, b_{j+1} = b_j + 3, up to b_J = L (the leaves). Node p of level j < J
has the k_j = 2**s_j children (p << s_j) | c, c = 0 .. k_j - 1, with s_0 = r and s_j = 3 below. A
node is active in a sample when a leaf below it is; its pattern is the mask of its active children
(bit c: child c). Each sample codes its root's pattern (0 when nothing is active), then every
active node below the root codes its pattern (never 0). At d_sae = 16,384 and 64 active features a
sample codes about 150 patterns, 2.4 per active feature (version 2 coded 12.7 binary decisions per
active feature).

Probabilities: independent leaves, leaf f active with probability q_f, so
P(pattern M of node p | p active) = prod_{c in M} q_c prod_{c not in M} (1 - q_c) / q_p (the root:
the same product, undivided), with q of a node the probability that a leaf below it is active; the
patterns cost sum_f H(q_f) bits per sample in expectation, as version 2's binary splitting does.
Integer rule, so that every machine derives the same intervals:
  u_f = 1 - q_f in 32-bit fixed point by ``activity.leaf_values`` (Krichevsky-Trofimov on the counts,
        as ``ActivityTables.from_counts`` states), 2**32 for padding and for a leaf masked in a sample
  children c = 0 .. k - 1 of a node, with u_c and q_c = 2**32 - u_c: v := [2**32]; for each c in
        turn, v := (floor(v_M * u_c / 2**32) for every M) followed by (floor(v_M * q_c / 2**32)
        for every M), so v has 2**k entries and v_M is the mask M's product; the node's own u is v_0
  weights (integers): T = 2**24 - 2**k (a node of 8 children has 256 masks), V = the sum of v_M over
        the masks the node may code (all for the root, M != 0 below it); w_M = floor(v_M * T / V) for
        those (0 if V = 0), w_0 = 0 below the root; the remainder T - sum w goes to the first mask of
        largest v_M among them
  intervals: mask M codes [c_M, c_M+1) of 2**24, c_M = sum_{M' < M} (w_M' + 1), which is
        constriction's Categorical(perfect=False) over the float64 weights w (they sum to T, so its
        scale is 1): the node's own model when no leaf below it is masked in the sample, else a row
        of the weights derived in that sample.
The flat model is one layer of all features, q_f = P(f active), and nothing is masked.

Forest (``parents``; a feature's depth is its number of ancestors): layer d holds the features of
depth d (ascending ids). Layer 0 is coded as above with q_f = P(f active). Each layer d >= 1 is
coded after layer d - 1, in three parts:
  bits: for every active feature g of layer d - 1 with at most HUB_CHILDREN (8) children, in
        (sample, g) order, each of g's children c in ascending id codes one bit, c active, with
        probability P(c | g active), a 24-bit fixed-point p = ``activity._prob_solo`` of
        2**32 - ``leaf_values(joint_c, a_g)``, handed to constriction as a row (1 - p, p) (version 2's
        activity bits);
  hubs: for every feature g of layer d - 1 with more children, in ascending g, a tree over g's
        children (ascending ids) with leaves u_c = ``leaf_values(joint_c, a_g)``, coded as above in
        the samples where g is active (its root's pattern once in each of them), nothing masked;
  tree: the layer's tree codes the layer's features that fire while their parent is inactive, with
        q_c = P(c | parent inactive), and, in each sample, the children of its active parents masked
        where q_c >= 2**-6 (u_c <= 2**32 - 2**26; below that a child of an active parent is only coded
        absent from the tree, at -log2(1 - q_c) < 0.023 bits).
In a "tree" model every child's u is 2**32 in its layer's tree: the tree costs almost nothing (each
sample's empty root pattern has probability 1 - 2**-16 or more), and a child that fires without its
parent is still coded, at about 24 bits a level, never refused. The decoder refuses a feature coded
in a layer's tree whose parent is active.
A sample then costs sum_roots H(p_f) + sum_children [P(g) H(c | g) + (1 - P(g)) H(c | not g)] bits
in expectation, but for the children below the masking threshold.

Coding order (decoding order) of a chunk of n samples: layer after layer, its bits, its hubs' trees,
its tree. Within a tree coded in a set of samples: level after level, the patterns of the active
nodes with no masked leaf below them, node by node (ascending position) and within a node sample by
sample (at the root: every sample of the set), then those of the active nodes above a masked leaf in
(sample, position) order. Limits: the children a chunk lists (the bits, and the masked leaves) are
at most MAX_CHUNK_DECISIONS (the encoder refuses a chunk with more, the decoder stops before
listing them), so that one chunk's decoding holds a bounded number whatever the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import constriction
import numpy as np

from mdlcodec.codec.activity import _U_ONE, FIXED_BITS, _mul, _prob_solo, leaf_values
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.forest import forest_depths

MAX_CHUNK_DECISIONS = 1 << 21
"""Most forest bits (children of active features) one chunk may code."""

EXACT_BELOW = _U_ONE - np.uint64(1 << 26)
"""A child's u at or below this (q >= 2**-6) is masked in its layer's tree where its parent is active."""

_TOTAL = 1 << FIXED_BITS
_ROWS = constriction.stream.model.Categorical(perfect=False)  # one row of weights per symbol


class ChunkTooLarge(ValueError):
    """A chunk whose forest bits pass MAX_CHUNK_DECISIONS: fewer rows per chunk fit."""


def bit_rows(probs: np.ndarray) -> np.ndarray:
    """[m, 2] float64 rows (1 - p, p): constriction's Categorical (perfect=False) over {0, 1} with
    these rows quantises every 24-bit fixed-point p exactly as its Bernoulli(perfect=False) does (the
    same intervals, so the same stream; tests/codec/test_fast_coder.py checks all 2**24 - 1 of them),
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
    total = np.uint64(_TOTAL - k)
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
        hit, at = _member(nodes, below >> s)
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


# -- the symbols of a chunk --------------------------------------------------------------------------

@dataclass
class Patterns:
    """Patterns of one level of a layer's tree coded with the nodes' own models: nodes [a] int64, the
    positions of the active nodes ascending; counts [a] int64, the samples each codes; masks
    [sum counts] int32, node by node, each node's samples ascending."""

    tree: LayerTree
    level: int
    nodes: np.ndarray
    counts: np.ndarray
    masks: np.ndarray

    @classmethod
    def of(cls, tree: LayerTree, level: int, pos: np.ndarray, masks: np.ndarray) -> "Patterns":
        """From the positions and masks of active nodes in (sample, position) order."""
        counts = np.bincount(pos) if len(pos) else np.zeros(0, dtype=np.int64)
        nodes = np.flatnonzero(counts)
        return cls(tree, level, nodes, counts[nodes], masks[_node_major(pos)].astype(np.int32))

    def runs(self) -> list[tuple[object, np.ndarray]]:
        """(constriction model, masks) of each node's run of patterns, in coding order."""
        stops = np.cumsum(self.counts).tolist()
        model, j, masks = self.tree.model, self.level, self.masks
        return [(model(j, p), masks[a:b]) for p, a, b in zip(self.nodes.tolist(), [0, *stops[:-1]], stops)]

    def ideal_bits(self) -> float:
        at = np.repeat(self.nodes, self.counts)
        c = self.tree.cdf[self.level]
        return float(-np.log2((c[at, self.masks + 1] - c[at, self.masks]) / _TOTAL).sum())


@dataclass
class ContextPatterns:
    """Patterns of the active nodes of one level above a masked leaf, each coded with the row of weights
    derived for it (``Context.rows``): nodes [m] their sorted keys, masks [m] int32."""

    context: Context
    level: int
    nodes: np.ndarray
    masks: np.ndarray
    one_batch: np.ndarray | None = field(default=None, repr=False)  # the rows, kept when they are one batch

    def batches(self, reverse: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(masks, rows) a batch at a time, in coding order (the last batch first with ``reverse``)."""
        if self.one_batch is not None:
            yield self.masks, self.one_batch
            return
        for at, rows in self.context.rows(self.level, self.nodes, reverse):
            yield self.masks[at], rows

    def ideal_bits(self) -> float:
        return float(sum(-np.log2((rows[np.arange(len(m)), m] + 1) / _TOTAL).sum() for m, rows in self.batches()))


@dataclass
class Rows:
    """Forest bits [m] int32, each coded with its row (1 - p, p) [m, 2] float64 (``bit_rows``)."""

    symbols: np.ndarray
    rows: np.ndarray

    def ideal_bits(self) -> float:
        return float(-np.log2(self.rows[np.arange(len(self.symbols)), self.symbols]).sum())


@dataclass
class OccupancySymbols:
    """A chunk's activity symbols in coding order (``Patterns``, ``ContextPatterns`` and ``Rows``)."""

    steps: list

    def ideal_bits(self) -> float:
        """Code length in bits: -log2 of each symbol's interval share (a bit's: of its probability)."""
        return sum(s.ideal_bits() for s in self.steps)

    def symbol_count(self) -> int:
        """Coded symbols: patterns and forest bits."""
        return sum(len(s.symbols) if isinstance(s, Rows) else len(s.masks) for s in self.steps)


def _node_major(pos: np.ndarray) -> np.ndarray:
    """Stable order of a level's (row-major) active nodes by position (radix sort below 2**16)."""
    return np.argsort(pos.astype(np.uint16) if len(pos) and pos.max() < 1 << 16 else pos, kind="stable")


def _member(keys: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each of want is in the sorted keys, its index there where it is)."""
    if not len(keys):
        return np.zeros(len(want), dtype=bool), np.zeros(len(want), dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return keys[at] == want, at


def _tree_steps(tree: LayerTree, keys: np.ndarray, roots: np.ndarray, masked: np.ndarray) -> list:
    """The steps of a tree coded in the samples ``roots`` (sorted): keys, sorted (sample << L) |
    position of its active leaves."""
    levels = tree.levels
    per_level: list = []
    for j in range(len(levels) - 2, -1, -1):  # bottom-up: each level's active nodes and their masks
        s = levels[j + 1] - levels[j]
        up = keys >> s
        starts = np.flatnonzero(np.r_[True, up[1:] != up[:-1]]) if len(up) else np.zeros(0, dtype=np.int64)
        masks = np.bitwise_or.reduceat(np.int64(1) << (keys & ((1 << s) - 1)), starts) if len(starts) else up[:0]
        keys = up[starts]
        per_level.append((keys, masks))
    keys, masks = per_level[-1]  # the root: every sample, 0 where nothing is active
    root = np.zeros(len(roots), dtype=np.int64)
    root[np.searchsorted(roots, keys)] = masks
    per_level[-1] = (roots, root)
    ctx = tree.context(masked)
    steps: list = []
    for j, (keys, masks) in enumerate(reversed(per_level)):
        inside = _member(ctx.keys[j], keys)[0] if ctx is not None else np.zeros(len(keys), dtype=bool)
        plain = ~inside
        steps.append(Patterns.of(tree, j, keys[plain] & ((1 << levels[j]) - 1), masks[plain]))
        if inside.any():
            steps.append(ContextPatterns(ctx, j, keys[inside], masks[inside].astype(np.int32)))
    return steps


def _masked(tables: OccupancyTables, tree: LayerTree, rows: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Sorted keys, among the leaves of a layer's tree, of the children of the active (rows, feats) of
    the layer above that the tree masks."""
    m_rows, m_feats = tables.pairs(tables.mask_ptr, tables.mask_children, rows, feats)
    return np.sort((m_rows << tree.levels[-1]) | tables.local[m_feats])


def _active_hubs(tables: OccupancyTables, rows: np.ndarray, feats: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(g, the samples where it is active, ascending) for each hub among the active (rows, feats), g ascending."""
    hub = np.flatnonzero(tables.hubs(feats))
    hub = hub[np.argsort(feats[hub], kind="stable")]
    for g, at in _groups(feats[hub]):
        yield g, rows[hub[at]]


def occupancy_symbols(codes: SparseCodes, tables: OccupancyTables, chunk: bool = True) -> OccupancySymbols:
    """The symbols that describe which features are active in each sample, in decoding order.
    ChunkTooLarge for a chunk whose active features list more than MAX_CHUNK_DECISIONS children
    (``chunk`` False: codes that are not one chunk, for their ideal bits only)."""
    rows, feats = codes.rows(), codes.indices.astype(np.int64)
    every = np.arange(codes.n, dtype=np.int64)
    if tables.parents is None:
        tree = tables.layers[0]
        return OccupancySymbols(_tree_steps(tree, (rows << tree.levels[-1]) | feats, every, feats[:0]))
    d = codes.d_sae
    if chunk and tables.enumerated(feats) > MAX_CHUNK_DECISIONS:
        raise ChunkTooLarge(f"the chunk's active features have more than {MAX_CHUNK_DECISIONS:,} children "
                            "to list, beyond the format's limit")
    keys = rows * d + feats
    layer_of, local = tables.layer_of[feats], tables.local[feats]
    steps: list = []
    prev_rows = prev_feats = feats[:0]
    for lvl, tree in enumerate(tables.layers):
        mine = layer_of == lvl
        r, f = rows[mine], feats[mine]
        masked = feats[:0]
        off = np.ones(len(f), dtype=bool)
        if lvl:
            c_rows, c_feats = tables.pairs(tables.bit_ptr, tables.bit_children, prev_rows, prev_feats)
            on, _ = _member(keys, c_rows * d + c_feats)
            steps.append(Rows(on.astype(np.int32), bit_rows(tables.on_prob[c_feats])))
            par = tables.parents[f]
            off = ~_member(prev_rows * d + prev_feats, r * d + par)[0]
            under = np.flatnonzero(~off & tables.hubs(par))  # children coded by their hub's tree
            by_hub = under[np.lexsort((tables.slot[f[under]], r[under], par[under]))]
            for g, roots in _active_hubs(tables, prev_rows, prev_feats):
                tree_g = tables.hub_tree(g)
                lo, hi = np.searchsorted(par[by_hub], [g, g + 1])
                kids = by_hub[lo:hi]
                steps.extend(_tree_steps(tree_g, (r[kids] << tree_g.levels[-1]) | tables.slot[f[kids]], roots,
                                         feats[:0]))
            masked = _masked(tables, tree, prev_rows, prev_feats)
        steps.extend(_tree_steps(tree, (r[off] << tree.levels[-1]) | local[mine][off], every, masked))
        prev_rows, prev_feats = r, f
    return OccupancySymbols(steps)


def _groups(values: np.ndarray) -> Iterator[tuple[int, slice]]:
    """(value, slice) of each run of equal values in a sorted array."""
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.zeros(0, dtype=np.int64)
    stops = np.r_[starts[1:], len(values)]
    for v, a, b in zip(values[starts].tolist(), starts.tolist(), stops.tolist()):
        yield v, slice(a, b)


def _decode_tree(decode, tree: LayerTree, roots: np.ndarray, masked: np.ndarray, max_active: int | None,
                 steps: list) -> np.ndarray:
    """Sorted keys (sample << L) | position of the active leaves of a tree coded in the samples
    ``roots`` (sorted), decoded; appends the steps read."""
    levels = tree.levels
    ctx = tree.context(masked)
    keys = roots
    for j in range(len(levels) - 1):
        inside = _member(ctx.keys[j], keys)[0] if ctx is not None else np.zeros(len(keys), dtype=bool)
        plain = np.flatnonzero(~inside)
        pos = keys[plain] & ((1 << levels[j]) - 1)
        order = _node_major(pos)
        counts = np.bincount(pos) if len(pos) else np.zeros(0, dtype=np.int64)
        nodes = np.flatnonzero(counts)
        counts = counts[nodes]
        parts = list(map(decode, [tree.model(j, p) for p in nodes.tolist()], counts.tolist()))
        node_major = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        steps.append(Patterns(tree, j, nodes, counts, node_major))
        masks = np.empty(len(keys), dtype=np.int64)
        masks[plain[order]] = node_major
        if inside.any():
            nodes = keys[inside]
            batches = [rows for _, rows in ctx.rows(j, nodes)]
            sym = np.concatenate([decode(_ROWS, rows) for rows in batches])
            steps.append(ContextPatterns(ctx, j, nodes, sym, batches[0] if len(batches) == 1 else None))
            masks[inside] = sym
        if j and len(masks) and not masks.all():
            raise ValueError("an active node with no active child: the stream does not match the model")
        s = levels[j + 1] - levels[j]
        pop = _POPCOUNT[s][masks]
        keys = np.repeat(keys << s, pop) + _SET_BITS[s][np.repeat(_FIRST[s][masks] - np.cumsum(pop) + pop, pop)
                                                          + np.arange(int(pop.sum()))]
        if max_active is not None and len(keys) > max_active:
            raise ValueError(f"more than {max_active:,} active latents in one chunk, beyond the format's limit")
    if len(keys) and int((keys & ((1 << levels[-1]) - 1)).max()) >= len(tree.features):
        raise ValueError("decoded a padding feature: the stream does not match the model")
    return keys


def decode_occupancy(decode, n: int, tables: OccupancyTables, d_sae: int, max_active: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, OccupancySymbols]:
    """Inverse of occupancy_symbols. decode(model, count) -> [count] int32 and decode(model, rows) ->
    [len(rows)] int32 read symbols in order (constriction's ``AnsCoder.decode``).

    Returns rows [nnz] int64 and features [nnz] int32, sorted by (row, feature), and the symbols read
    (what occupancy_symbols gives for them: the decoder refuses every other pattern). ValueError as soon
    as the active nodes of a level pass ``max_active`` (never fewer than the active features below
    them), for a pattern that cannot occur (an active node with no active child, a padding feature, a
    feature coded in a layer's tree whose parent is active) and for forest bits beyond MAX_CHUNK_DECISIONS.
    """
    steps: list = []
    every = np.arange(n, dtype=np.int64)
    if tables.parents is None:
        tree = tables.layers[0]
        keys = _decode_tree(decode, tree, every, np.zeros(0, dtype=np.int64), max_active, steps)
        L = tree.levels[-1]
        return keys >> L, (keys & ((1 << L) - 1)).astype(np.int32), OccupancySymbols(steps)
    d = d_sae
    all_rows, all_feats = [], []
    prev_rows = prev_feats = np.zeros(0, dtype=np.int64)
    listed = total = 0

    def room() -> int | None:
        return None if max_active is None else max_active - total

    for lvl, tree in enumerate(tables.layers):
        on_rows, on_feats, masked = [], [], np.zeros(0, dtype=np.int64)
        if lvl:
            listed += tables.enumerated(prev_feats)
            if listed > MAX_CHUNK_DECISIONS:
                raise ValueError(f"more than {MAX_CHUNK_DECISIONS:,} children of active features to list in one "
                                 "chunk, beyond the format's limit")
            c_rows, c_feats = tables.pairs(tables.bit_ptr, tables.bit_children, prev_rows, prev_feats)
            rows2 = bit_rows(tables.on_prob[c_feats])
            bits = decode(_ROWS, rows2) if len(c_feats) else np.zeros(0, dtype=np.int32)
            steps.append(Rows(bits, rows2))
            on = bits.astype(bool)
            on_rows.append(c_rows[on])
            on_feats.append(c_feats[on])
            for g, roots in _active_hubs(tables, prev_rows, prev_feats):
                tree_g = tables.hub_tree(g)
                keys = _decode_tree(decode, tree_g, roots, np.zeros(0, dtype=np.int64), room(), steps)
                L = tree_g.levels[-1]
                on_rows.append(keys >> L)
                on_feats.append(tree_g.features[keys & ((1 << L) - 1)])
                total += len(keys)
            masked = _masked(tables, tree, prev_rows, prev_feats)
        keys = _decode_tree(decode, tree, every, masked, room(), steps)
        L = tree.levels[-1]
        r, f = keys >> L, tree.features[keys & ((1 << L) - 1)]
        if lvl:
            parent_on, _ = _member(prev_rows * d + prev_feats, r * d + tables.parents[f])
            if parent_on.any():
                raise ValueError("a feature coded as firing without its parent has an active parent: "
                                 "the stream does not match the model")
        r, f = np.concatenate([*on_rows, r]), np.concatenate([*on_feats, f])
        order = np.argsort(r * d + f, kind="stable")
        prev_rows, prev_feats = r[order], f[order]
        total += len(r) - sum(len(x) for x in on_rows[1:])
        if max_active is not None and total > max_active:
            raise ValueError(f"more than {max_active:,} active latents in one chunk, beyond the format's limit")
        all_rows.append(prev_rows)
        all_feats.append(prev_feats)
    rows, feats = np.concatenate(all_rows), np.concatenate(all_feats)
    if len(tables.layers) > 1:
        order = np.argsort(rows * d + feats, kind="stable")
        rows, feats = rows[order], feats[order]
    return rows, feats.astype(np.int32), OccupancySymbols(steps)


def _bit_tables(s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the masks of a node with 2**s children: popcount [2**2**s], the set bits of every mask
    concatenated (ascending within a mask), and where each mask's run starts in them."""
    k = 1 << s
    bits = [[c for c in range(k) if m >> c & 1] for m in range(1 << k)]
    pop = np.array([len(b) for b in bits], dtype=np.int64)
    first = np.zeros(1 << k, dtype=np.int64)
    np.cumsum(pop[:-1], out=first[1:])
    return pop, np.array([c for b in bits for c in b], dtype=np.int64), first


_TABLES = {s: _bit_tables(s) for s in (1, 2, 3)}
_POPCOUNT = {s: t[0] for s, t in _TABLES.items()}
_SET_BITS = {s: t[1] for s, t in _TABLES.items()}
_FIRST = {s: t[2] for s, t in _TABLES.items()}
