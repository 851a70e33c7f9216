"""JumpReLU SAE (Rajamanoharan et al. 2024), for inference: each latent has its own threshold on its
pre-activation, z = pre * (pre > threshold), and a latent is never negative (SAELens' relu(pre) *
(pre > threshold), so a negative threshold acts as 0).

The thresholds are the buffer `threshold` [d_sae] float32, saved beside the weights (`extra_weights`);
a fresh SAE has them at 0, which makes it a ReLU SAE. This is how SAEs imported from the peers
(mdlcodec.models.peers) keep their thresholds: SAELens' JumpReLU SAEs and the BatchTopK SAEs that
SAELens saves for inference as JumpReLU, and dictionary_learning's JumpReluAutoEncoder and its
thresholded encode (the one threshold copied to every latent). mdlcodec does not train JumpReLU SAEs
(that needs a straight-through estimator for the thresholds): training one is refused.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAE, SAEConfig, register


@register("jumprelu")
class JumpReLUSAE(SAE):
    extra_weights = ("threshold",)

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None):
        super().__init__(cfg, generator)
        self.register_buffer("threshold", torch.zeros(cfg.d_sae))

    @classmethod
    def check(cls, cfg: SAEConfig) -> None:
        super().check(cfg)
        if cfg.threshold is not None:
            raise ModelError("jumprelu keeps one threshold per latent in its weights file, not one in its config")

    @classmethod
    def check_trainable(cls, cfg: SAEConfig) -> None:
        raise ModelError("mdlcodec cannot train jumprelu SAEs (its thresholds need a straight-through estimator); "
                         "they are imported for inference: train batchtopk instead")

    def keep(self, pre: Tensor) -> Tensor:
        """Which pre-activations [n, d_sae] are active: above their latent's threshold and above 0."""
        return (pre > self.threshold) & (pre > 0)

    def activate(self, pre: Tensor) -> Tensor:
        return torch.where(self.keep(pre), pre, torch.zeros_like(pre))  # = pre * (pre > t), no -0.0

    def activate_sparse(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """`activate` in sparse form, without the dense latents: each row's top m of its kept
        pre-activations (the others set to -inf, so they rank last), m the most kept in any row; the
        entries taken beyond a row's own kept ones are set to 0."""
        on = self.keep(pre)
        m = int(on.sum(1).max()) if pre.shape[0] else 0
        vals, idx = torch.where(on, pre, torch.full_like(pre, -torch.inf)).topk(m, dim=1)
        return torch.where(on.gather(1, idx), vals, torch.zeros_like(vals)), idx
