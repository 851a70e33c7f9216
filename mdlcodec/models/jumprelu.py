"""JumpReLU SAE (Rajamanoharan et al. 2024), for inference: each latent has its own threshold on its
pre-activation, z = pre * (pre > threshold), and a latent is never negative (SAELens' relu(pre) *
(pre > threshold), so a negative threshold acts as 0).

The thresholds are the buffer `threshold` [d_sae] float32, saved beside the weights (`extra_weights`);
a fresh SAE has them at 0, which makes it a ReLU SAE. This is how SAEs imported from the peers
(mdlcodec.models.peers) keep their thresholds: SAELens' JumpReLU SAEs and the BatchTopK SAEs that
SAELens saves for inference as JumpReLU, and dictionary_learning's JumpReluAutoEncoder and its
thresholded encode (the one threshold copied to every latent).

mdlcodec trains JumpReLU SAEs only for description length (objective "mdl", models.rate): the rate's
activity bits are the sparsity penalty, and the thresholds are learned through the straight-through
estimate of Rajamanoharan et al. 2024 (z = pre * H(pre - theta): dz/dtheta = -pre * K / eps, K the
rectangle kernel of width eps around theta; dz/dpre = H). For training, start_training turns the
threshold buffer into a parameter, initialised per latent at the START_QUANTILE quantile of a
sample's pre-activations (so each fires on about 10% of samples at first), and finish_training turns
it back; thresholds are kept >= 0 after each step.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAE, SAEConfig, register
from mdlcodec.models.rate import straight_through_gate

START_QUANTILE = 0.9  # the thresholds' start: each latent's 90th percentile of pre-activations


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
        if cfg.objective != "mdl":
            raise ModelError("mdlcodec trains jumprelu SAEs only with objective mdl (the rate is their sparsity "
                             "penalty and trains their thresholds)", param="objective")

    def start_training(self, pre: Tensor, bandwidth: float, fresh: bool = True) -> None:
        t = self.threshold.detach().clone()
        if fresh:
            t = torch.quantile(pre.detach().float(), START_QUANTILE, dim=0).clamp_min(0)
        del self._buffers["threshold"]
        self.threshold = torch.nn.Parameter(t.to(pre.dtype))
        self.bandwidth = float(bandwidth)

    def finish_training(self) -> None:
        t = self.threshold.detach().clone()
        del self._parameters["threshold"]
        self.register_buffer("threshold", t)

    def activate_train(self, pre: Tensor) -> Tensor:
        """pre * H(pre - threshold), with the straight-through gradient to the thresholds only."""
        if not isinstance(self.threshold, torch.nn.Parameter):
            return self.activate(pre)
        gate = straight_through_gate(pre.detach(), self.threshold, self.keep(pre), self.bandwidth)
        return pre * gate

    def gate_threshold(self, pre: Tensor, z: Tensor) -> Tensor:
        return self.threshold

    @torch.no_grad()
    def observe_train(self, z: Tensor) -> None:
        self.threshold.clamp_(min=0)

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


def jumprelu_from(sae: SAE) -> JumpReLUSAE:
    """A jumprelu SAE that encodes exactly as a trained batchtopk SAE does: the same weights, its one
    threshold copied to every latent (the start of an "mdl" fine-tuning of a BatchTopK SAE)."""
    if sae.cfg.arch != "batchtopk" or sae.cfg.threshold is None:
        raise ModelError(f"a jumprelu SAE is made from a trained batchtopk SAE (with its threshold), "
                         f"not {sae.cfg.arch}")
    cfg = dataclasses.replace(sae.cfg, arch="jumprelu", k=None, threshold=None, objective=None)
    out = JumpReLUSAE(cfg)
    with torch.no_grad():
        for n in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(out, n).copy_(getattr(sae, n))
        out.threshold.fill_(sae.cfg.threshold)
    return out.to(sae.W_dec.device).eval()
