"""ReLU SAE with an L1 penalty (Bricken et al. 2023).

z = relu(pre). The penalty is l1_coeff * sum_i z_i * ||W_dec[i]||, averaged over the batch; training
keeps decoder rows at unit norm, so this equals l1_coeff * ||z||_1 per sample. The penalty is in the
units of the training loss: squared error summed over the d_in dimensions of the (normalised) input.
"""

from __future__ import annotations

from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAE, SAEConfig, register


@register("relu")
class ReluSAE(SAE):
    @classmethod
    def check(cls, cfg: SAEConfig) -> None:
        super().check(cfg)
        if cfg.l1_coeff is None:
            raise ModelError("relu needs an L1 coefficient l1_coeff", param="l1_coeff")
        if not cfg.l1_coeff >= 0:
            raise ModelError(f"relu needs an L1 coefficient l1_coeff >= 0, got {cfg.l1_coeff}")

    def activate(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def sparsity_penalty(self, z: Tensor) -> Tensor:
        return self.cfg.l1_coeff * (z * self.W_dec.norm(dim=1)).sum(dim=1).mean()
