"""Tree-structured SAE: BatchTopK whose features form a forest.

`parents` [d_sae] int64 names each feature's parent (-1 for a root). A child's activation is zero
unless its parent is active: after BatchTopK's activation (training: top n * k of the batch;
inference: the running threshold) the forest is walked depth by depth and every child whose parent
is zero is zeroed, so a zeroed feature silences its whole subtree. With this rule the latent cost
splits per feature, a child paying H(child | parent active) only where its parent fired.

The forest is either given or grown from a flat SAE's codes (`grow_forest`, `tree_from_flat`): a
feature's parent is the most specific feature it (almost) always co-fires with.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse
import torch
from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.core.forest import check_forest, forest_depths
from mdlcodec.models.base import SAE, SAEConfig, compact_sparse, encode_batch_rows, make_sae, register
from mdlcodec.models.batchtopk import BatchTopKSAE


def _activity_csr(active, n_features: int | None) -> scipy.sparse.csr_matrix:
    """Activity bits as a float64 CSR matrix [n, F] of ones."""
    if scipy.sparse.issparse(active):
        m = scipy.sparse.csr_matrix(active)
        m.data = (m.data != 0).astype(np.float64)
        m.eliminate_zeros()
        return m
    indptr, indices = np.asarray(active[0], np.int64), np.asarray(active[1], np.int64)
    if n_features is None:
        n_features = int(indices.max()) + 1 if len(indices) else 0
    return scipy.sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(indptr) - 1, n_features))


def grow_forest(active, min_implication: float = 0.9, n_features: int | None = None) -> np.ndarray:
    """A forest parents [F] int64 grown from activity bits [n, F].

    active: a scipy.sparse matrix (non-zero = active) or CSR arrays (indptr [n + 1], indices [nnz]);
    for the latter n_features gives F (default: largest index + 1). Feature f's parent is, among the
    features g != f ranked above f (P(g) > P(f), equal counts ranked by lower index) with
    P(g active | f active) >= min_implication, the one ranked lowest: the most specific feature that
    f implies; -1 if none (or f never fires). Parents rank above their children, so no cycles.
    Co-activation counts come from the sparse product X.T @ X (memory grows with co-firing pairs)."""
    if not 0 < min_implication <= 1:
        raise ModelError(f"min_implication must be in (0, 1], got {min_implication}")
    x = _activity_csr(active, n_features)
    F = x.shape[1]
    count = np.asarray(x.sum(0)).ravel()
    rank = np.empty(F, dtype=np.int64)
    rank[np.lexsort((-np.arange(F), count))] = np.arange(F)  # ascending count; ties: lower index ranks higher
    co = (x.T @ x).tocoo()  # co[g, f] = samples where both g and f fire
    g, f, both = co.row.astype(np.int64), co.col.astype(np.int64), co.data
    keep = (g != f) & (rank[g] > rank[f]) & (both >= min_implication * count[f]) & (count[f] > 0)
    g, f = g[keep], f[keep]
    order = np.lexsort((rank[g], f))  # per child, candidates from the most specific up
    g, f = g[order], f[order]
    first = np.ones(len(f), dtype=bool)
    first[1:] = f[1:] != f[:-1]
    parents = np.full(F, -1, dtype=np.int64)
    parents[f[first]] = g[first]
    return parents


@register("tree")
class TreeSAE(BatchTopKSAE):
    """BatchTopK with the hierarchy mask: a feature fires only if its parent (buffer `parents`
    [d_sae] int64, -1 for roots) fires. Construct with make_sae(cfg, generator, parents=...)."""

    structure = ("parents",)

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None, parents=None):
        super().__init__(cfg, generator)
        if parents is None:
            raise ModelError("a tree SAE needs its forest: parents, one parent feature (or -1) per feature")
        self.register_buffer("parents", torch.from_numpy(check_forest(parents, cfg.d_sae)))
        self._build_layers()
        self.register_load_state_dict_post_hook(_rebuild_layers)  # load_state_dict may bring new parents

    def _build_layers(self) -> None:
        """Precompute the walk: non-root features sorted by depth (`_children`, with `_layer_parents`
        their parents) and the slice bounds of each depth (`_bounds`)."""
        p = check_forest(self.parents, self.cfg.d_sae)
        depth = forest_depths(p)
        children = np.flatnonzero(p >= 0)
        children = children[np.argsort(depth[children], kind="stable")]
        ends = np.cumsum(np.bincount(depth[children], minlength=int(depth.max()) + 1))
        self._bounds = list(zip(ends[:-1].tolist(), ends[1:].tolist()))  # depth 1, 2, ...
        dev = self.parents.device
        self.register_buffer("_children", torch.from_numpy(children).to(dev), persistent=False)
        self.register_buffer("_layer_parents", torch.from_numpy(p[children]).to(dev), persistent=False)

    def mask(self, z: Tensor) -> Tensor:
        """Zero every feature of z [n, d_sae] whose parent is zero, root to leaves."""
        on = z > 0
        for a, b in self._bounds:
            c = self._children[a:b]
            on[:, c] &= on[:, self._layer_parents[a:b]]
        return torch.where(on, z, torch.zeros_like(z))

    def mask_sparse(self, values: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        """`mask` in sparse form (values, indices [n, m], distinct indices per row): an entry survives if
        its value is > 0 and so is its parent's entry in the same row, root to leaves; the others are
        removed (compact_sparse), so the survivors keep their values bit for bit."""
        on = values > 0
        if self._bounds and values.shape[1]:
            order = indices.argsort(dim=1)
            ascending = indices.gather(1, order)
            parent = self.parents[indices]                                    # -1 for a root
            pos = torch.searchsorted(ascending, parent.clamp_min(0)).clamp_max(values.shape[1] - 1)
            has_parent = ascending.gather(1, pos) == parent                   # parent's entry is in the row
            slot = order.gather(1, pos)                                       # ... in this column
            root = parent < 0
            for _ in self._bounds:  # after pass j every feature of depth <= j is final
                on &= root | (has_parent & on.gather(1, slot))
        return compact_sparse(torch.where(on, values, torch.zeros_like(values)), indices)

    def activate(self, pre: Tensor) -> Tensor:
        return self.mask(super().activate(pre))

    def activate_sparse(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        return self.mask_sparse(*super().activate_sparse(pre))

    def gate_threshold(self, pre: Tensor, z: Tensor) -> None:
        """None: a forced ancestor fires below the batch threshold, so the tree has no single gate to
        train through; objective "mdl" is refused."""

    def activate_train(self, pre: Tensor) -> Tensor:
        return self.mask(super().activate_train(pre))


def _rebuild_layers(module: TreeSAE, _incompatible_keys) -> None:
    module._build_layers()


@torch.no_grad()
def tree_from_flat(flat: SAE, x_train, min_implication: float = 0.9) -> TreeSAE:
    """A tree SAE with flat's weights, input_scale and threshold, and a forest grown (grow_forest)
    from flat's codes on raw-scale x_train [n, d_in] (numpy or tensor). flat: topk, batchtopk or tree."""
    if flat.cfg.arch not in ("topk", "batchtopk", "tree"):
        raise ModelError(f"a tree grows from a topk or batchtopk SAE, not {flat.cfg.arch}")
    if x_train.ndim != 2 or x_train.shape[1] != flat.cfg.d_in:
        raise ModelError(f"data has shape {list(x_train.shape)}, the SAE expects [n, {flat.cfg.d_in}]")
    device = next(flat.parameters()).device
    was_training = flat.training
    flat.eval()
    rows, cols = [], []
    batch = encode_batch_rows(flat.cfg.d_sae)
    for s in range(0, x_train.shape[0], batch):
        xb = x_train[s:s + batch]
        xb = (xb if isinstance(xb, Tensor) else torch.from_numpy(np.array(xb, np.float32))).to(device, torch.float32)
        with torch.no_grad():
            values, indices = flat.encode_sparse(xb)  # the active latents only: no dense [batch, d_sae] latents
        r, j = (values > 0).nonzero(as_tuple=True)
        rows.append(r.cpu().numpy() + s)
        cols.append(indices[r, j].cpu().numpy())
    flat.train(was_training)
    n, F = x_train.shape[0], flat.cfg.d_sae
    r, c = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (rows, cols))
    active = scipy.sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, F))
    cfg = dataclasses.replace(flat.cfg, arch="tree")
    tree = make_sae(cfg, torch.Generator().manual_seed(0), parents=grow_forest(active, min_implication))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        getattr(tree, name).copy_(getattr(flat, name))
    return tree.to(device).eval()
