"""Feature forests: ``parents[f]`` is feature f's parent, -1 for a root. The one validator, used by
the tree SAE (models), the hierarchical activity code (codec) and the paper's formulas (theory)."""

from __future__ import annotations

import numpy as np

from mdlcodec.core.errors import ForestError


def forest_depths(parents: np.ndarray, max_depth: int | None = None) -> np.ndarray:
    """Depth [F] int64 of each feature in the forest parents [F] (roots 0, their children 1, ...).

    ForestError (one line) if parents is not 1-D integers in [-1, F), a feature is its own parent,
    the parent links contain a cycle, or (with ``max_depth``) a feature lies deeper than max_depth,
    found after max_depth + 1 vectorised steps, so that parents read from an untrusted file cost
    O(F * max_depth) at most. O(F * max depth), vectorised over features."""
    p = np.asarray(parents)
    if p.ndim != 1 or not (np.issubdtype(p.dtype, np.integer) or p.size == 0):
        raise ForestError(f"parents must be a 1-D list of integers, got shape {list(p.shape)} of {p.dtype}")
    p = p.astype(np.int64)
    n = len(p)
    bad = np.flatnonzero((p < -1) | (p >= n))
    if len(bad):
        raise ForestError(f"parents must be -1 or a feature index in [0, {n}): parents[{bad[0]}] = {p[bad[0]]}")
    own = np.flatnonzero(p == np.arange(n))
    if len(own):
        raise ForestError(f"feature {own[0]} is its own parent")
    depth = np.zeros(n, dtype=np.int64)
    up = p.copy()  # each feature's ancestor `depth` levels up (-1 once past its root)
    steps = n + 1 if max_depth is None else min(n, max_depth) + 1
    for _ in range(steps):  # a path has at most n - 1 links
        live = up >= 0
        if not live.any():
            return depth
        depth[live] += 1
        up[live] = p[up[live]]
    if max_depth is not None and max_depth < n:
        raise ForestError(f"the forest is deeper than {max_depth} levels (or has a cycle) at feature "
                          f"{int(np.flatnonzero(up >= 0)[0])}")
    raise ForestError(f"parents has a cycle through feature {int(np.flatnonzero(up >= 0)[0])}")


def check_forest(parents, d_sae: int) -> np.ndarray:
    """parents (array, list or tensor) as a validated int64 numpy array [d_sae]; ForestError otherwise."""
    p = parents.detach().cpu().numpy() if hasattr(parents, "detach") else np.asarray(parents)
    if p.ndim != 1 or len(p) != d_sae:
        raise ForestError(f"parents has shape {list(p.shape)}, the SAE has d_sae={d_sae} features")
    forest_depths(p)
    return p.astype(np.int64)
