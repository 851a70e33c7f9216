"""Which features are active, format version 3: the occupancy patterns of an 8-ary tree over the
features and, under a feature forest, one bit for each child of an active feature.

Tree. The d_sae features are the leaves 0 .. 2**L - 1 of a tree, L = max(1, ceil(log2 d_sae))
(leaves past d_sae are padding, never active). Level j of the tree has 2**b_j nodes, numbered by
position; b_0 = 0 (the root), b_1 = r = ((L - 1) mod 3) + 1, b_{j+1} = b_j + 3, up to b_J = L (the
leaves, where position = feature id). Node p of level j < J has the 2**s_j children
(p << s_j) | c, c = 0 .. 2**s_j - 1, with s_0 = r and s_j = 3 below. A node is active in a sample
when a feature below it is; its pattern is the mask of its active children (bit c: child c). Each
sample codes its root's pattern (0 when nothing is active), then every active node below the root
codes its pattern (never 0). At d_sae = 16,384 and 64 active features a sample codes about 150
patterns, 2.4 per active feature (version 2 coded 12.7 binary decisions per active feature).

Probabilities: independent features, feature f active with the base probability q_f: P(f active)
in a flat model and for a forest's roots, P(f active | parent inactive) for a forest's other
features (0 in a "tree" model, where a child never fires without its parent). Then
P(pattern M of node p | p active) = prod_{c in M} q_c prod_{c not in M} (1 - q_c) / q_p (the root:
the same product, undivided), so the patterns cost sum_f H(q_f) bits per sample in expectation,
as version 2's binary splitting does. Integer rule, so that every machine derives the same
intervals:
  u_f = 1 - q_f in 32-bit fixed point by ``activity.leaf_values`` (Krichevsky-Trofimov on the counts;
        ``ActivityTables.from_counts`` states which counts), 2**32 for padding and a tree's children
  children c = 0 .. k - 1 of a node (k = 2**s), with u_c and q_c = 2**32 - u_c: v := [2**32]; for
        each c in turn, v := (floor(v_M * u_c / 2**32) for every M) followed by (floor(v_M * q_c / 2**32)
        for every M), so v has 2**k entries and v_M is the mask M's product; the node's own u is v_0
  weights (integers): T = 2**24 - 2**k (a node of 8 children has 256 masks), V = the sum of v_M over the masks the node may code (all
        for the root, M != 0 below it); w_M = floor(v_M * T / V) for those (0 if V = 0), w_0 = 0
        below the root; the remainder T - sum w goes to the first mask of largest v_M among them
  intervals: mask M codes [c_M, c_M+1) of 2**24, c_M = sum_{M' < M} (w_M' + 1), which is
        constriction's Categorical(perfect=False) over the float64 weights w (they sum to T, so its
        scale is 1)
Forest (``parents``): the tree codes the set B of active features whose parent is inactive (the
active roots and, in a "conditional" model, the children that fire without their parent). Then
for each depth d = 1, 2, ...: for every active feature g of depth d - 1, in (sample, g) order, each
of g's children c in ascending id codes one bit, c active, with probability P(c | g active), a
24-bit fixed-point p = ``activity._prob_solo`` of 2**32 - ``leaf_values(joint_c, a_g)``, handed to
constriction as version 2's activity bits are. A decoded feature of B whose parent is active is
refused. Against version 2's exact conditional coding, a conditional model pays -log2(1 - q_c)
for each child c of an active parent (it is coded absent from B), a small fraction of a bit.

Coding order (decoding order) of a chunk of n samples: the n root patterns; for each level
j = 1 .. J - 1, the patterns of its active nodes, node by node (ascending position) and, within a
node, sample by sample; then the forest's bits, depth by depth. Limits: a chunk's forest bits are at
most MAX_CHUNK_DECISIONS (the encoder refuses a chunk with more, the decoder stops before decoding
them), so that one chunk's decoding holds a bounded number whatever the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import constriction
import numpy as np

from mdlcodec.codec.activity import _U_ONE, FIXED_BITS, _mul, _prob_solo, leaf_values
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.forest import forest_depths

MAX_CHUNK_DECISIONS = 1 << 24
"""Most forest bits (children of active features) one chunk may code."""


class ChunkTooLarge(ValueError):
    """A chunk whose forest bits pass MAX_CHUNK_DECISIONS: fewer rows per chunk fit."""


_TOTAL = 1 << FIXED_BITS


def level_bits(d_sae: int) -> list[int]:
    """[b_0 = 0, b_1 = r, ..., b_J = L]: the bits of the node positions at each level of the tree."""
    L = max(1, (d_sae - 1).bit_length())
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
class OccupancyTables:
    """The tree's intervals and the forest's bits of one entropy model.

    levels: b_0 .. b_J (``level_bits``); cdf[j]: [2**b_j, 2**(2**s_j) + 1] int32, the interval bounds
    c_M of every node of level j < J; parents [d_sae] int64 (-1: root) or None when flat; depth [d_sae] int64;
    child_ptr [d_sae + 1], children: each feature's children ascending, CSR; on_prob [d_sae] float64
    P(f | parent active) as the coder receives it (24-bit fixed point; unused for roots). Constriction's
    model of each node is built when first decoded with (``model``)."""

    levels: list[int]
    cdf: list[np.ndarray]
    parents: np.ndarray | None = None
    depth: np.ndarray | None = None
    child_ptr: np.ndarray | None = None
    children: np.ndarray | None = None
    on_prob: np.ndarray | None = None
    _models: list = field(default_factory=list, repr=False)

    @classmethod
    def from_counts(cls, active_counts: np.ndarray, n_samples: int, parents: np.ndarray | None = None,
                    joint_counts: np.ndarray | None = None, tree: bool = False) -> "OccupancyTables":
        """Tables from the integer counts of ``ActivityTables.from_counts`` (the same arguments)."""
        a = np.asarray(active_counts, np.int64)
        d = len(a)
        levels = level_bits(d)
        u = np.full(1 << levels[-1], _U_ONE, dtype=np.uint64)
        if parents is None:
            u[:d] = leaf_values(a, np.full(d, n_samples))
        else:
            parents, joint = np.asarray(parents, np.int64), np.asarray(joint_counts, np.int64)
            root = parents < 0
            u[:d][root] = leaf_values(a[root], np.full(int(root.sum()), n_samples))
            child = np.flatnonzero(~root)
            if not tree:
                u[child] = leaf_values(a[child] - joint[child], n_samples - a[parents[child]])
        cdf: list[np.ndarray] = [np.zeros(0)] * (len(levels) - 1)
        for j in range(len(levels) - 2, -1, -1):
            s = levels[j + 1] - levels[j]
            v = pattern_products(u.reshape(-1, 1 << s))
            w = pattern_weights(v, root=j == 0)
            c = np.zeros((len(w), w.shape[1] + 1), dtype=np.int32)
            np.cumsum(w + 1, axis=1, out=c[:, 1:], dtype=np.int32)
            cdf[j] = c
            u = v[:, 0]
        tables = cls(levels, cdf, _models=[[None] * len(c) for c in cdf])
        if parents is not None:
            child = np.flatnonzero(parents >= 0)
            order = child[np.argsort(parents[child], kind="stable")]
            ptr = np.zeros(d + 1, dtype=np.int64)
            np.cumsum(np.bincount(parents[child], minlength=d), out=ptr[1:])
            on = np.full(d, 0.5)
            on[child] = _prob_solo(_U_ONE - leaf_values(joint[child], a[parents[child]]))
            tables.parents, tables.depth = parents, forest_depths(parents)
            tables.child_ptr, tables.children, tables.on_prob = ptr, order.astype(np.int64), on
        return tables

    def model(self, j: int, p: int):
        """constriction's Categorical of node p of level j (built once)."""
        m = self._models[j][p]
        if m is None:
            w = np.diff(self.cdf[j][p]).astype(np.float64) - 1.0
            m = self._models[j][p] = constriction.stream.model.Categorical(w, perfect=False)
        return m

    # -- the forest -----------------------------------------------------------------------------------
    def child_pairs(self, rows: np.ndarray, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, children) of every child of the active (rows, feats), in (row, feature, child) order
        when the pairs are sorted by (row, feature)."""
        start, stop = self.child_ptr[feats], self.child_ptr[feats + 1]
        counts = stop - start
        total = int(counts.sum())
        offs = np.repeat(start - np.cumsum(counts) + counts, counts) + np.arange(total)
        return np.repeat(rows, counts), self.children[offs]

    def decision_count(self, feats: np.ndarray) -> int:
        """How many forest bits the active features ``feats`` give (their children)."""
        return int((self.child_ptr[feats + 1] - self.child_ptr[feats]).sum())


@dataclass
class LevelPatterns:
    """The patterns of one level of the tree in coding order: nodes [a] int64, the positions of its
    active nodes ascending; counts [a] int64, how many samples each is active in; masks [sum counts]
    int32, node by node, each node's samples ascending (``parts`` splits them)."""

    nodes: np.ndarray
    counts: np.ndarray
    masks: np.ndarray

    @classmethod
    def of(cls, pos: np.ndarray, masks: np.ndarray) -> "LevelPatterns":
        """From the positions and masks of a level's active nodes in (sample, position) order."""
        counts = np.bincount(pos) if len(pos) else np.zeros(0, dtype=np.int64)
        nodes = np.flatnonzero(counts)
        return cls(nodes, counts[nodes], masks[_node_major(pos)].astype(np.int32))

    def parts(self) -> list[np.ndarray]:
        """masks split into each node's run."""
        stops = np.cumsum(self.counts).tolist()
        masks = self.masks
        return [masks[a:b] for a, b in zip([0, *stops[:-1]], stops)]


@dataclass
class OccupancySymbols:
    """A chunk's activity in coding order: the patterns of each level of the tree (``LevelPatterns``,
    level 0 first), then the forest's bits (bits [k] int32, probs [k] float64 as constriction receives
    them)."""

    tables: OccupancyTables
    levels: list[LevelPatterns]
    bits: np.ndarray
    probs: np.ndarray

    def runs(self) -> list[tuple[object, np.ndarray]]:
        """(constriction model, masks) of each node's run of patterns, in coding order."""
        model = self.tables.model
        return [(model(j, p), part) for j, lv in enumerate(self.levels)
                for p, part in zip(lv.nodes.tolist(), lv.parts())]

    def widths(self) -> np.ndarray:
        """Each pattern's interval width, of 2**24, in coding order."""
        out = []
        for c, lv in zip(self.tables.cdf, self.levels):
            at = np.repeat(lv.nodes, lv.counts)
            out.append(c[at, lv.masks + 1] - c[at, lv.masks])
        return np.concatenate(out)

    def ideal_bits(self) -> float:
        """Code length in bits: -log2 of each pattern's interval share and of each bit's probability."""
        patterns = float(-np.log2(self.widths() / _TOTAL).sum())
        return patterns + float(-np.log2(np.where(self.bits == 1, self.probs, 1.0 - self.probs)).sum())


def _node_major(pos: np.ndarray) -> np.ndarray:
    """Stable order of a level's (row-major) active nodes by position (radix sort below 2**16)."""
    return np.argsort(pos.astype(np.uint16) if len(pos) and pos.max() < 1 << 16 else pos, kind="stable")


def _split_forest(tables: OccupancyTables, rows: np.ndarray, feats: np.ndarray, d: int) -> np.ndarray:
    """[nnz] bool: which active (rows, feats) (sorted by row, then feature) belong to B (their parent
    is a root's -1 or inactive in that row)."""
    par = tables.parents[feats]
    keys = rows * d + feats
    has = par >= 0
    want = rows[has] * d + par[has]
    at = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    in_b = np.ones(len(feats), dtype=bool)
    in_b[has] = keys[at] != want if len(keys) else True
    return in_b


def occupancy_symbols(codes: SparseCodes, tables: OccupancyTables) -> OccupancySymbols:
    """The symbols that describe which features are active in each sample, in decoding order.
    ChunkTooLarge for a chunk whose forest bits would pass MAX_CHUNK_DECISIONS."""
    rows, feats = codes.rows(), codes.indices.astype(np.int64)
    d, L = codes.d_sae, tables.levels[-1]
    bits = probs = np.zeros(0)
    if tables.parents is not None:
        in_b = _split_forest(tables, rows, feats, d)
        bits, probs = _forest_bits(tables, rows, feats, d)
        rows, feats = rows[in_b], feats[in_b]
    keys = (rows << L) | feats  # sorted: rows ascending, features ascending within a row
    per_level: list = []
    for j in range(len(tables.levels) - 2, -1, -1):  # bottom-up: each level's nodes and masks
        s = tables.levels[j + 1] - tables.levels[j]
        up = keys >> s
        new = np.r_[True, up[1:] != up[:-1]] if len(up) else np.zeros(0, dtype=bool)
        starts = np.flatnonzero(new)
        masks = np.bitwise_or.reduceat(np.int64(1) << (keys & ((1 << s) - 1)), starts) if len(starts) else up[:0]
        keys = up[starts]
        per_level.append((j, keys, masks))
    j, keys, masks = per_level[-1]  # the root: every sample, 0 where nothing is active
    root = np.zeros(codes.n, dtype=np.int32)
    root[keys] = masks
    levels = [LevelPatterns(np.zeros(1, dtype=np.int64), np.array([codes.n]), root)]
    levels += [LevelPatterns.of(keys & ((1 << tables.levels[j]) - 1), masks) for j, keys, masks in per_level[-2::-1]]
    return OccupancySymbols(tables, levels, bits, probs)


def _forest_bits(tables: OccupancyTables, rows: np.ndarray, feats: np.ndarray, d: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The forest's bits and probabilities of the active (rows, feats), in coding order."""
    if tables.decision_count(feats) > MAX_CHUNK_DECISIONS:
        raise ChunkTooLarge(f"the chunk's active features have more than {MAX_CHUNK_DECISIONS:,} children, "
                         "beyond the format's limit")
    keys = rows * d + feats
    depth = tables.depth[feats]
    bits, probs = [], []
    for lvl in range(int(depth.max()) + 1 if len(depth) else 0):
        at = depth == lvl
        c_rows, c_feats = tables.child_pairs(rows[at], feats[at])
        want = c_rows * d + c_feats
        hit = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
        bits.append((keys[hit] == want).astype(np.int32))
        probs.append(tables.on_prob[c_feats])
    if not bits:
        return np.zeros(0, dtype=np.int32), np.zeros(0)
    return np.concatenate(bits), np.concatenate(probs)


def decode_occupancy(decode, decode_bits, n: int, tables: OccupancyTables, d_sae: int,
                     max_active: int | None = None) -> tuple[np.ndarray, np.ndarray, OccupancySymbols]:
    """Inverse of occupancy_symbols. decode(model, count) -> [count] int32 reads pattern symbols in
    order, decode_bits(probs) -> [len(probs)] int32 reads forest bits.

    Returns rows [nnz] int64 and features [nnz] int32, sorted by (row, feature), and the symbols read
    (what occupancy_symbols gives for them: the decoder refuses every other pattern). ValueError as soon
    as the active nodes of a level pass ``max_active`` (never fewer than the active features below
    them), for a pattern that cannot occur (an active node with no active child, a padding feature, a
    feature coded in B whose parent is active) and for forest bits beyond MAX_CHUNK_DECISIONS.
    """
    levels = tables.levels
    masks = decode(tables.model(0, 0), n)
    read = [LevelPatterns(np.zeros(1, dtype=np.int64), np.array([n]), masks)]
    keys = np.arange(n, dtype=np.int64)
    for j in range(len(levels) - 1):
        if j:  # the patterns of level j's active nodes, node by node
            pos = keys & ((1 << levels[j]) - 1)
            order = _node_major(pos)
            counts = np.bincount(pos) if len(pos) else np.zeros(0, dtype=np.int64)
            nodes = np.flatnonzero(counts)
            counts = counts[nodes]
            parts = list(map(decode, [tables.model(j, p) for p in nodes.tolist()], counts.tolist()))
            node_major = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
            read.append(LevelPatterns(nodes, counts, node_major))
            if len(node_major) and not node_major.all():
                raise ValueError("an active node with no active child: the stream does not match the model")
            masks = np.empty(len(keys), dtype=np.int32)
            masks[order] = node_major
        s = levels[j + 1] - levels[j]
        pop = _POPCOUNT[s][masks]
        keys = np.repeat(keys << s, pop) + _SET_BITS[s][np.repeat(_FIRST[s][masks] - np.cumsum(pop) + pop, pop)
                                                          + np.arange(int(pop.sum()))]
        if max_active is not None and len(keys) > max_active:
            raise ValueError(f"more than {max_active:,} active latents in one chunk, beyond the format's limit")
    L = levels[-1]
    rows, feats = keys >> L, keys & ((1 << L) - 1)
    if len(feats) and feats.max() >= d_sae:
        raise ValueError("decoded a padding feature: the stream does not match the model")
    bits = probs = np.zeros(0)
    if tables.parents is not None:
        rows, feats, bits, probs = _decode_forest(decode_bits, tables, rows, feats, d_sae, max_active)
    return rows, feats.astype(np.int32), OccupancySymbols(tables, read, bits, probs)


def _decode_forest(decode_bits, tables: OccupancyTables, rows: np.ndarray, feats: np.ndarray, d: int,
                   max_active: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """B's (rows, feats) -> every active (rows, feats), sorted, and the bits read and their probabilities,
    decoding the forest's bits depth by depth."""
    depth = tables.depth[feats]
    all_rows, all_feats = [rows], [feats]
    prev_rows, prev_feats = rows[depth == 0], feats[depth == 0]
    decisions, total = 0, len(rows)
    bits, probs = [np.zeros(0, dtype=np.int32)], [np.zeros(0)]
    for lvl in range(1, int(tables.depth.max()) + 1):
        decisions += tables.decision_count(prev_feats)
        if decisions > MAX_CHUNK_DECISIONS:
            raise ValueError(f"more than {MAX_CHUNK_DECISIONS:,} forest decisions in one chunk, beyond the format's limit")
        c_rows, c_feats = tables.child_pairs(prev_rows, prev_feats)
        p = tables.on_prob[c_feats]
        b = decode_bits(p) if len(c_feats) else np.zeros(0, dtype=np.int32)
        probs.append(p)
        bits.append(b)
        on = b.astype(bool)
        c_rows, c_feats = c_rows[on], c_feats[on]
        total += len(c_rows)
        if max_active is not None and total > max_active:
            raise ValueError(f"more than {max_active:,} active latents in one chunk, beyond the format's limit")
        all_rows.append(c_rows)
        all_feats.append(c_feats)
        here = depth == lvl
        r, f = np.concatenate([rows[here], c_rows]), np.concatenate([feats[here], c_feats])
        order = np.argsort(r * d + f, kind="stable")
        prev_rows, prev_feats = r[order], f[order]
    rows, feats = np.concatenate(all_rows), np.concatenate(all_feats)
    order = np.argsort(rows * d + feats, kind="stable")
    rows, feats = rows[order], feats[order]
    in_b = np.zeros(len(rows), dtype=bool)
    in_b[np.argsort(order)[:len(all_rows[0])]] = True
    if not np.array_equal(_split_forest(tables, rows, feats, d), in_b):
        raise ValueError("a feature coded as firing without its parent has an active parent: "
                         "the stream does not match the model")
    return rows, feats, np.concatenate(bits), np.concatenate(probs)


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
