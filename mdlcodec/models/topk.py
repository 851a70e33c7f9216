"""TopK SAE (Gao et al. 2024): each sample keeps its k largest positive pre-activations."""

from __future__ import annotations

import torch
from torch import Tensor

from mdlcodec.models.base import SAE, SAEConfig, check_k, register


def topk_per_sample(pre: Tensor, k: int) -> Tensor:
    """Keep the k largest of relu(pre) [n, d_sae] in each row, zero the rest."""
    vals, idx = pre.relu().topk(k, dim=1)
    return torch.zeros_like(pre).scatter(1, idx, vals)


def topk_per_sample_sparse(pre: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """topk_per_sample in sparse form (values, indices) [n, m]: the same relu(pre).topk(k), trimmed to
    m = the most nonzero values of any row (topk sorts each row descending, so the zeros come last)."""
    vals, idx = pre.relu().topk(k, dim=1)
    m = k - int((vals <= 0).sum(1).min()) if vals.shape[0] else 0  # <=: a NaN (ranked first) counts as kept
    return vals[:, :m], idx[:, :m]


@register("topk")
class TopKSAE(SAE):
    uses_auxk = True
    sparse_train = True

    @classmethod
    def check(cls, cfg: SAEConfig) -> None:
        super().check(cfg)
        check_k(cfg)

    def activate(self, pre: Tensor) -> Tensor:
        return topk_per_sample(pre, self.cfg.k)

    def activate_sparse(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        return topk_per_sample_sparse(pre, self.cfg.k)

    def gate_threshold(self, pre: Tensor, z: Tensor) -> Tensor:
        """Each sample's smallest selected activation [n, 1] (held fixed: k sets how many latents fire)."""
        return z.detach().masked_fill(z <= 0, torch.inf).min(1, keepdim=True).values
