"""Test helpers of the models layer, shared by its test files and with the CLI tests."""

from __future__ import annotations

import numpy as np
import torch

from mdlcodec.models import SAE, SAEConfig, make_sae


# --- small SAEs of every architecture (test_base, test_topk, test_batchtopk, test_relu, test_io, test_evaluate)

def _sae(arch: str = "batchtopk", d_in: int = 12, d_sae: int = 20, seed: int = 0, **kw) -> SAE:
    kw.setdefault("k", 3 if arch != "relu" else None)
    if arch == "relu":
        kw.setdefault("l1_coeff", 0.1)
    sae = make_sae(SAEConfig(arch, d_in, d_sae, **kw), torch.Generator().manual_seed(seed))
    with torch.no_grad():  # non-trivial biases so that every term of encode/decode matters
        g = torch.Generator().manual_seed(seed + 1)
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=g))
    return sae.eval()


def _x(n: int = 50, d: int = 12, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# --- tree SAEs on the toy model's planted hierarchy (test_tree, and `train --arch tree` in the CLI tests)

HIERARCHY_TOY = "toy:hierarchy=8,n=4000,d=64"  # as many dimensions as features: an exact linear encoder exists


def _obeys(z: torch.Tensor, parents: np.ndarray) -> bool:
    """Every active child has an active parent."""
    on = (z > 0).cpu().numpy()
    kids = np.flatnonzero(parents >= 0)
    return bool((on[:, parents[kids]] | ~on[:, kids]).all())


def _oracle(ds, threshold: float = 0.25):
    """A batchtopk SAE with the toy's true dictionary and its exact inverse as encoder (d = n_features)."""
    u = ds.truth.directions
    sae = make_sae(SAEConfig("batchtopk", u.shape[1], u.shape[0], k=3, threshold=threshold))
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(u))
        sae.W_enc.copy_(torch.from_numpy(np.linalg.pinv(u).astype(np.float32)))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()
