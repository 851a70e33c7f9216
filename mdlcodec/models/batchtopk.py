"""BatchTopK SAE (Bussmann et al. 2024).

Training keeps the n * k largest positive pre-activations across a batch of n samples, so k is the
mean L0 and each sample's L0 varies. Training also tracks a running (exponential) average of the
smallest selected activation; inference keeps every pre-activation above that threshold,
z = pre * (pre > threshold), which makes encoding independent of the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAE, SAEConfig, as_float32, check_k, register
from mdlcodec.models.topk import topk_per_sample, topk_per_sample_sparse

THRESHOLD_BETA = 0.99  # weight of the old threshold in the running average, per training step


@register("batchtopk")
class BatchTopKSAE(SAE):
    uses_auxk = True
    sparse_train = True

    @classmethod
    def check(cls, cfg: SAEConfig) -> None:
        super().check(cfg)
        check_k(cfg)
        if cfg.threshold is not None and not cfg.threshold >= 0:
            raise ModelError(f"batchtopk threshold must be >= 0, got {cfg.threshold}")

    def activate(self, pre: Tensor) -> Tensor:
        """Inference: threshold the pre-activations; before any training, fall back to per-sample top-k."""
        if self.cfg.threshold is None:
            return topk_per_sample(pre, self.cfg.k)
        return torch.where(pre > self.cfg.threshold, pre, torch.zeros_like(pre))  # = pre * (pre > t), no -0.0

    def activate_sparse(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """`activate` in sparse form, without the dense latents: a row's pre-activations above the
        threshold are its largest, so the top m of each row (m the most above it in any row) hold
        them all; the rest of those m are zeroed."""
        if self.cfg.threshold is None:
            return topk_per_sample_sparse(pre, self.cfg.k)
        # m counts "not <= threshold", so a NaN (which topk ranks first) cannot push out a kept value
        m = pre.shape[1] - int((pre <= self.cfg.threshold).sum(1).min()) if pre.shape[0] else 0
        vals, idx = pre.topk(m, dim=1)
        return torch.where(vals > self.cfg.threshold, vals, torch.zeros_like(vals)), idx

    def activate_train(self, pre: Tensor) -> Tensor:
        flat = pre.relu().flatten()
        vals, idx = flat.topk(min(self.cfg.k * pre.shape[0], flat.numel()))
        return torch.zeros_like(flat).scatter(0, idx, vals).view_as(pre)

    def gate_threshold(self, pre: Tensor, z: Tensor) -> Tensor:
        """The batch's smallest selected activation (held fixed: k sets how many latents fire)."""
        active = z[z > 0]
        return (active.min() if active.numel() else pre.new_zeros(())).detach()

    @torch.no_grad()
    def observe_train(self, z: Tensor) -> None:
        """Update the running threshold with the smallest positive activation of a training batch."""
        active = z[z > 0]
        if active.numel() == 0:
            return
        low = float(active.min())
        t = self.cfg.threshold
        self.cfg.threshold = as_float32(low if t is None else THRESHOLD_BETA * t + (1 - THRESHOLD_BETA) * low)
