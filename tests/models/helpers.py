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


# --- latents computed elsewhere (a peer's own numbers, another summation order) -------------------------

TIE_RTOL = 1e-5  # float32: a sum in another order moves a latent by a few ulps (~1e-7 relative)


def selection_boundary(sae: SAE) -> np.ndarray | None:
    """The value [d_sae] at which each latent of `sae` turns on (its JumpReLU threshold, BatchTopK's one
    threshold, 0 for ReLU), or None where the boundary is each row's k-th largest value (TopK)."""
    d, arch = sae.cfg.d_sae, sae.cfg.arch
    if arch == "jumprelu":
        return np.maximum(sae.threshold.detach().cpu().numpy(), 0.0)
    if arch == "relu" or (arch == "batchtopk" and sae.cfg.threshold is not None):
        return np.full(d, sae.cfg.threshold or 0.0, np.float32)
    return None


def assert_latents_match_up_to_ties(z, ref, boundary: np.ndarray | None = None, rtol: float = 1e-5,
                                    atol: float = 1e-5, max_swapped_rows: float = 0.01) -> np.ndarray:
    """Assert that latents `z` and `ref` [n, d_sae] of one SAE, computed in two summation orders (a peer's
    machine and this one, a folded and an unfolded scale), agree: values within rtol/atol wherever both
    are active, and the same active latents except where a float32 tie at the selection boundary went
    the other way. A latent active in one only is such a tie when its value is within TIE_RTOL (plus
    atol) of the boundary: `boundary[j]` where given (see selection_boundary), else the other side's
    smallest active value in that row (TopK's k-th). At most `max_swapped_rows` of the rows may hold
    a tie. Returns the rows [n] bool that hold one, to leave out of reconstruction checks."""
    z, ref = np.asarray(z), np.asarray(ref)
    assert z.shape == ref.shape, (z.shape, ref.shape)
    a, b = z != 0, ref != 0
    np.testing.assert_allclose(z[a & b], ref[a & b], rtol=rtol, atol=atol)
    rows, cols = np.nonzero(a != b)
    in_z = a[rows, cols]
    value = np.abs(np.where(in_z, z[rows, cols], ref[rows, cols]))
    if boundary is None:
        smallest_z = np.where(a, np.abs(z), np.inf).min(axis=1)
        smallest_ref = np.where(b, np.abs(ref), np.inf).min(axis=1)
        edge = np.where(in_z, smallest_ref[rows], smallest_z[rows])
    else:
        edge = np.asarray(boundary, np.float64)[cols]
    bad = ~(np.abs(value - edge) <= atol + TIE_RTOL * np.abs(edge))
    assert not bad.any(), "active in one only, away from the boundary (row, latent, value, boundary): " + ", ".join(
        f"({r}, {c}, {v:.7g}, {e:.7g})" for r, c, v, e in list(zip(rows[bad], cols[bad], value[bad], edge[bad]))[:5])
    swapped = np.zeros(len(z), bool)
    swapped[rows] = True
    assert swapped.mean() <= max_swapped_rows, f"{swapped.sum()} of {len(z)} rows hold a tie"
    return swapped
