"""Feature hierarchies for the activity code: a forest over features, coded child given parent.

Two kinds, both coded by ``activity.py`` layer by layer of the forest:
- "tree": a tree SAE's own forest; a child never fires without its parent, so its activity is sent
  only when the parent fired: DL = sum_roots H(p_r) + sum_children P(parent) H(p_child | parent).
- "conditional": a Chow-Liu forest learned for any SAE from its training codes; each feature's
  activity is coded given its parent's, in both states: DL = sum_roots H(p_r) + sum_children
  H(child | parent). The maximum spanning forest on pairwise mutual information is the best such
  forest (Chow and Liu 1968).

Chow-Liu here: co-activation counts come from one sparse product X^T X of the [n, d_sae] activity
matrix, so only pairs that fire together are candidate edges (a pair that never co-fires has
mutual information of order p_f p_g, negligible for sparse codes). The maximum spanning forest is
scipy's minimum spanning tree on (max MI - MI), over the pairs whose mutual information saves more
than an edge's own table cost (EDGE_BITS) on the training codes, so that spurious edges do not join
unrelated trees; each tree is rooted at its most frequent feature (a parent fires at least as often
as a child that implies it). After rooting, an edge is kept only if the codec's smoothed conditional
code shortens the child's training codes by more than EDGE_BITS, so on its training data the hierarchy never costs more than the flat code plus its
tables; depth is capped at MAX_DEPTH (edges below it are cut, each cut child becoming a root), as
every layer adds one coded bit per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from mdlcodec.codec.arrays import take
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.errors import ModelError
from mdlcodec.core.forest import forest_depths

KINDS = {"tree": 1, "conditional": 2}
MAX_DEPTH = 8
MAX_FOREST_DEPTH = 64
"""Deepest forest the codec codes (any kind): each layer adds coded bits to every sample and work to
every chunk, and a forest read from a file is refused beyond it before its layers are built."""


@dataclass(eq=False)
class Hierarchy:
    """parents [d_sae] int64 (-1: root); joint_counts [d_sae] int64, training samples with the
    feature and its parent both active (0 for roots); kind: "tree" or "conditional"."""

    parents: np.ndarray
    joint_counts: np.ndarray
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown hierarchy kind {self.kind!r}")
        if self.parents.shape != self.joint_counts.shape or self.parents.ndim != 1:
            raise ValueError("parents and joint counts must be 1-D of one length")
        try:
            forest_depths(self.parents, MAX_FOREST_DEPTH)
        except ModelError as e:
            raise ValueError(str(e)) from None
        if np.any(self.joint_counts < 0) or np.any(self.joint_counts[self.parents < 0] != 0):
            raise ValueError("joint counts must be >= 0, and 0 for roots")

    @classmethod
    def count(cls, codes: SparseCodes, parents: np.ndarray, kind: str) -> "Hierarchy":
        """Count, in codes, the samples where each feature and its parent are both active."""
        parents = np.asarray(parents, np.int64)
        return cls(parents, joint_counts(codes, parents), kind)

    @property
    def n_edges(self) -> int:
        return int((self.parents >= 0).sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"parents": self.parents, "joint_counts": self.joint_counts,
                "hierarchy_kind": np.array([KINDS[self.kind]], dtype=np.int64)}

    ARRAYS = frozenset({"parents", "joint_counts", "hierarchy_kind"})
    """The arrays of ``to_arrays``: all present, or none (a flat model)."""

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], d_sae: int) -> "Hierarchy | None":
        """The hierarchy of d_sae features in a table dict, or None for a flat model; ValueError naming
        the problem if its arrays are partly present, of another dtype or shape than to_arrays writes,
        or do not form a forest at most MAX_FOREST_DEPTH deep (checked before any layer is built)."""
        present = cls.ARRAYS & set(a)
        if not present:
            return None
        if present != cls.ARRAYS:
            raise ValueError(f"hierarchy arrays {', '.join(sorted(cls.ARRAYS - present))} missing")
        kind = {v: k for k, v in KINDS.items()}.get(int(take(a, "hierarchy_kind", np.int64, (1,))[0]))
        if kind is None:
            raise ValueError("unknown hierarchy kind")
        return cls(take(a, "parents", np.int64, (d_sae,)), take(a, "joint_counts", np.int64, (d_sae,)), kind)

    def table_bits(self, n_samples: int) -> float:
        """Bits to describe the forest and its counts: per edge, the parent's index and the joint count."""
        d = len(self.parents)
        return self.n_edges * (math.log2(max(d, 2)) + math.log2(n_samples + 1))

    def edges(self, active_counts: np.ndarray, n_samples: int) -> list[dict]:
        """Every parent-child edge, strongest first: parent, child, mutual information (bits, on the
        training counts), P(child | parent active) and P(child | parent inactive) (empirical), and
        relation: "co-occur" when the child fires more often with its parent than without, else
        "exclude" (mutual information is as large for features that never fire together)."""
        child = np.flatnonzero(self.parents >= 0)
        par = self.parents[child]
        a = np.asarray(active_counts, np.int64)
        mi = mutual_information(self.joint_counts[child], a[child], a[par], n_samples)
        order = np.argsort(-mi, kind="stable")
        off = n_samples - a[par]
        out = [{"parent": int(par[j]), "child": int(child[j]), "mutual_information_bits": float(mi[j]),
                "p_child_given_parent": float(self.joint_counts[child[j]] / a[par[j]]) if a[par[j]] else 0.0,
                "p_child_given_not_parent": float((a[child[j]] - self.joint_counts[child[j]]) / off[j])
                if off[j] else 0.0} for j in order]
        for e in out:
            e["relation"] = "co-occur" if e["p_child_given_parent"] > e["p_child_given_not_parent"] else "exclude"
        return out


def joint_counts(codes: SparseCodes, parents: np.ndarray) -> np.ndarray:
    """[d_sae] int64: samples of codes where each feature and its parent are both active (0 for roots)."""
    parents = np.asarray(parents, np.int64)
    rows, feats = codes.rows(), codes.indices.astype(np.int64)
    keys = rows * codes.d_sae + feats  # sorted: codes are in (row, feature) order
    par = parents[feats]
    has = par >= 0
    want = rows[has] * codes.d_sae + par[has]
    i = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    both = np.zeros(len(feats), dtype=bool)
    if len(keys):
        both[np.flatnonzero(has)] = keys[i] == want
    return np.bincount(feats[both], minlength=codes.d_sae).astype(np.int64)


def prune_to_forest(codes: SparseCodes, parents: np.ndarray) -> SparseCodes:
    """codes without the entries whose parent is inactive in the same sample, root to leaves. A tree
    SAE's child never fires without its parent, but quantisation may round the parent's value to
    bin 0; the child goes with it, so that a tree's codes keep the property its code relies on."""
    parents = np.asarray(parents, np.int64)
    depth = forest_depths(parents)
    rows, feats = codes.rows(), codes.indices.astype(np.int64)
    keys = rows * codes.d_sae + feats  # sorted: codes are in (row, feature) order
    keep = np.ones(len(feats), dtype=bool)
    for lvl in range(1, int(depth.max(initial=0)) + 1):
        at = np.flatnonzero(keep & (depth[feats] == lvl))
        if not len(at):
            continue
        alive = keys[keep]
        want = rows[at] * codes.d_sae + parents[feats[at]]
        i = np.minimum(np.searchsorted(alive, want), len(alive) - 1)
        keep[at[alive[i] != want]] = False
    if keep.all():
        return codes
    return SparseCodes.from_rows(rows[keep], codes.indices[keep], codes.bins[keep], codes.n, codes.d_sae)


def _xlogx(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c > 0, c * np.log2(np.maximum(c, 1)), 0.0)


def mutual_information(n11: np.ndarray, a_f: np.ndarray, a_g: np.ndarray, n: int) -> np.ndarray:
    """Empirical mutual information (bits) of two activity bits from their counts in n samples."""
    n11, a_f, a_g = (np.asarray(v, np.float64) for v in (n11, a_f, a_g))
    cells = _xlogx(n11) + _xlogx(a_f - n11) + _xlogx(a_g - n11) + _xlogx(n - a_f - a_g + n11)
    margins = _xlogx(a_f) + _xlogx(n - a_f) + _xlogx(a_g) + _xlogx(n - a_g)
    return np.maximum((cells - margins + _xlogx(n)) / n, 0.0)


def _kt_bits(ones: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Code length (bits) of `ones` of `total` bits under the KT-smoothed probability the codec uses."""
    ones, total = np.asarray(ones, np.float64), np.asarray(total, np.float64)
    p = (ones + 0.5) / (total + 1.0)
    return -(ones * np.log2(p) + (total - ones) * np.log2(1 - p))


def coactivation(codes: SparseCodes) -> scipy.sparse.coo_matrix:
    """Upper-triangular (i < j) co-activation counts of feature pairs, [d_sae, d_sae] sparse int64."""
    x = scipy.sparse.csr_matrix((np.ones(codes.nnz, np.int64), codes.indices, codes.indptr),
                                shape=(codes.n, codes.d_sae))
    return scipy.sparse.triu(x.T @ x, k=1).tocoo()


def chow_liu(codes: SparseCodes, max_depth: int = MAX_DEPTH) -> Hierarchy:
    """The Chow-Liu forest of the features' activity bits in codes (see the module docstring)."""
    d, n = codes.d_sae, codes.n
    a = np.bincount(codes.indices, minlength=d).astype(np.int64)
    co = coactivation(codes)
    i, j, n11 = co.row.astype(np.int64), co.col.astype(np.int64), co.data.astype(np.int64)
    mi = mutual_information(n11, a[i], a[j], n)
    keep = mi * n > EDGE_BITS  # an edge must save its table cost (on the empirical counts)
    i, j, n11, mi = i[keep], j[keep], n11[keep], mi[keep]
    parents = np.full(d, -1, dtype=np.int64)
    if len(mi):
        cost = scipy.sparse.coo_matrix((mi.max() * (1 + 1e-9) + 1e-12 - mi, (i, j)), shape=(d, d)).tocsr()
        mst = scipy.sparse.csgraph.minimum_spanning_tree(cost)
        sym = (mst + mst.T).tocsr()
        n_comp, label = scipy.sparse.csgraph.connected_components(sym, directed=False)
        # Root each tree at its most frequent feature (ties: the lowest index).
        order = np.lexsort((np.arange(d), -a))
        root_of = np.full(n_comp, -1, dtype=np.int64)
        for f in order[::-1]:
            root_of[label[f]] = f
        for r in root_of:
            if sym.indptr[r + 1] > sym.indptr[r]:
                _, pred = scipy.sparse.csgraph.breadth_first_order(sym, int(r), directed=False)
                tree = pred >= 0
                parents[tree] = pred[tree]
        parents = _prune(parents, a, joint_counts(codes, parents), n)
        parents = _cap_depth(parents, max_depth)
    return Hierarchy.count(codes, parents, "conditional")


EDGE_BITS = 64.0
"""An edge must save more than this many bits on the training codes to be kept."""


def _prune(parents: np.ndarray, a: np.ndarray, joint: np.ndarray, n: int) -> np.ndarray:
    child = np.flatnonzero(parents >= 0)
    g = parents[child]
    flat = _kt_bits(a[child], np.full(len(child), n))
    cond = _kt_bits(joint[child], a[g]) + _kt_bits(a[child] - joint[child], n - a[g])
    out = parents.copy()
    out[child[cond >= flat - EDGE_BITS]] = -1
    return out


def _cap_depth(parents: np.ndarray, max_depth: int) -> np.ndarray:
    out = parents.copy()
    depth = forest_depths(out)
    while depth.max(initial=0) > max_depth:
        out[depth == max_depth + 1] = -1
        depth = forest_depths(out)
    return out
