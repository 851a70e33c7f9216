"""Reconstruction and sparsity metrics of an SAE on held-out data, computed in batches."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mdlcodec.models.base import SAE, encode_batch_rows


@torch.no_grad()
def evaluate(sae: SAE, x: np.ndarray | Tensor, batch_size: int | None = None) -> dict:
    """Metrics of sae on raw-scale x [n, d_in] (numpy, possibly memory-mapped, a shard folder's lazy
    rows, or a tensor), in batches of ``batch_size`` samples (default ``base.encode_batch_rows``: 4,096
    up to 4,096 latents, fewer for wider SAEs so that a batch's dense latents stay within 64 MiB).

    mse: squared error averaged over samples and dimensions (per pixel for MNIST); fvu: summed
    squared error / summed squared deviation of x from its mean (fraction of variance unexplained);
    l0_mean, l0_std: mean and standard deviation over samples of the number of active latents;
    alive: latents active on at least one sample of x; dead_fraction: 1 - alive / d_sae.
    """
    n, d = x.shape
    batch_size = batch_size or encode_batch_rows(sae.cfg.d_sae)
    if n == 0:
        raise ValueError("evaluate needs at least one sample")
    device = next(sae.parameters()).device
    was_training = sae.training
    sae.eval()
    sse = sxx = l0 = l0sq = 0.0
    col_sum = torch.zeros(d, dtype=torch.float64, device=device)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for s in range(0, n, batch_size):
        xb = x[s:s + batch_size]
        xb = (xb if isinstance(xb, Tensor) else torch.from_numpy(np.array(xb, np.float32))).to(device, torch.float32)
        x_hat, z = sae(xb)
        sse += float((x_hat - xb).double().pow(2).sum())
        xd = xb.double()
        col_sum += xd.sum(0)
        sxx += float(xd.pow(2).sum())
        active = z > 0
        counts = active.sum(1).double()
        l0 += float(counts.sum())
        l0sq += float(counts.pow(2).sum())
        fired |= active.any(0)
    sae.train(was_training)
    total_var = sxx - float(col_sum.pow(2).sum()) / n
    l0_mean = l0 / n
    alive = int(fired.sum())
    return {
        "n": n,
        "mse": sse / (n * d),
        "fvu": sse / total_var if total_var > 0 else float("nan"),
        "l0_mean": l0_mean,
        "l0_std": max(0.0, l0sq / n - l0_mean ** 2) ** 0.5,
        "alive": alive,
        "dead_fraction": 1.0 - alive / sae.cfg.d_sae,
    }


def feature_recovery(W_dec: np.ndarray, true_directions: np.ndarray, threshold: float = 0.9) -> float:
    """Fraction of true directions [F, d] that some decoder row [d_sae, d] matches with cosine >= threshold."""
    a = true_directions / np.linalg.norm(true_directions, axis=1, keepdims=True)
    b = W_dec / np.maximum(np.linalg.norm(W_dec, axis=1, keepdims=True), 1e-12)
    return float(((a @ b.T).max(axis=1) >= threshold).mean())
