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

from mdlcodec.codec.entropy.occupancy_tree import (  # noqa: F401  (the tree's names, as this module's)
    EXACT_BELOW,
    HUB_CHILDREN,
    TOTAL,
    Context,
    LayerTree,
    OccupancyTables,
    bit_rows,
    level_bits,
    member,
    pattern_products,
    pattern_weights,
)
from mdlcodec.codec.sparse import SparseCodes

MAX_CHUNK_DECISIONS = 1 << 21
"""Most forest bits (children of active features) one chunk may code."""

_ROWS = constriction.stream.model.Categorical(perfect=False)  # one row of weights per symbol


class ChunkTooLarge(ValueError):
    """A chunk whose forest bits pass MAX_CHUNK_DECISIONS: fewer rows per chunk fit."""


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
        return float(-np.log2((c[at, self.masks + 1] - c[at, self.masks]) / TOTAL).sum())


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
        return float(sum(-np.log2((rows[np.arange(len(m)), m] + 1) / TOTAL).sum() for m, rows in self.batches()))


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
        inside = member(ctx.keys[j], keys)[0] if ctx is not None else np.zeros(len(keys), dtype=bool)
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
            on, _ = member(keys, c_rows * d + c_feats)
            steps.append(Rows(on.astype(np.int32), bit_rows(tables.on_prob[c_feats])))
            par = tables.parents[f]
            off = ~member(prev_rows * d + prev_feats, r * d + par)[0]
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
        inside = member(ctx.keys[j], keys)[0] if ctx is not None else np.zeros(len(keys), dtype=bool)
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
            parent_on, _ = member(prev_rows * d + prev_feats, r * d + tables.parents[f])
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
