"""A differentiable estimate of a sample's code length, for training SAEs by description length
(``TrainConfig(objective="mdl")``: loss = MSE + beta * rate).

The codec (mdlcodec.codec, which this module does not import: models/ knows nothing of the
codec's bits) codes a sample's latents in two parts, and the estimate follows each, in bits per
sample (latents in the SAE's normalised units):

  activity  A = sum_f [ a_f * -log2 p_f + (1 - a_f) * -log2 (1 - p_f) ]
      a_f in {0, 1}: latent f active; p_f: f's firing probability, a running (exponential) average
      of the training batches' frequencies, held fixed in the gradient, as the codec's tables are
      counts over the training split. The codec's per-feature activity code costs exactly this.
  values    V = sum_{f active} -log2 P_f(v_f + s * u),  u ~ Uniform(-1/2, 1/2) per value
      P_f(y) = F_f(y + s/2) - F_f(y - s/2): the mass of the quantiser bin of width s (the step, in
      latent units) around y under F_f, a per-feature mixture of M logistic distributions with
      learned locations, scales and weights. Training replaces rounding by additive uniform noise
      of one bin's width (Balle, Laparra, Simoncelli 2017, as learned image codecs do): the noisy
      value's density under the box-smoothed F_f is the rounded value's probability in
      expectation, and the reconstruction is made from the noisy values so that the MSE includes
      the quantisation error. The codec's value tables are categorical over the bins (fit from
      counts), so V estimates them from above where F_f fits badly.
  rate R = A + V (bits per sample); the loss uses its mean over the batch.

The gate a_f is the architecture's (which latents are active, z > 0). Its gradient is a
straight-through estimate around the architecture's threshold theta_f (Rajamanoharan et al. 2024,
"Jumping ahead: JumpReLU SAEs"): forward a = 1[active]; backward, with a rectangle kernel of width
eps (``bandwidth``, latent units),
    da/dpre = K / eps,   da/dtheta = -K / eps,   K = 1[|pre - theta| < eps / 2].
So an activation costs log2((1 - p_f) / p_f) bits more than silence: the rate is an L0 penalty
weighted per feature by its log-odds, which moves firing onto frequent features. theta is jumprelu's
learned per-latent threshold, batchtopk's smallest selected activation in the batch and topk's in
each sample (held fixed: k sets how many fire, the rate only which); the SAE gives it with
``gate_threshold``. The step s is learned (log s a parameter) unless given.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mdlcodec.core.errors import ModelError

LOG2 = math.log(2.0)
P_MIN = 1e-6          # firing probabilities are kept in [P_MIN, 1 - P_MIN]
BIN_MASS_MIN = 1e-9   # a value's bin probability is at least this (at most ~30 bits)
MIXTURE = 3           # logistic components per feature
P_DECAY = 0.99        # weight of the old firing probabilities per training step


class _Gate(torch.autograd.Function):
    """Forward: the active mask as floats. Backward: the rectangle-kernel straight-through estimate
    (see the module docstring) to pre and, where it requires a gradient, theta."""

    @staticmethod
    def forward(ctx, pre: Tensor, theta: Tensor, active: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return active.to(pre.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        k = ((pre - theta).abs() < eps / 2).to(pre.dtype) / eps
        g_pre = grad * k
        g_theta = None
        if ctx.needs_input_grad[1]:
            g_theta = -g_pre
            while g_theta.dim() > theta.dim():
                g_theta = g_theta.sum(0)
            for i, n in enumerate(theta.shape):
                if n == 1 and g_theta.shape[i] != 1:
                    g_theta = g_theta.sum(i, keepdim=True)
        return g_pre, g_theta, None, None


def straight_through_gate(pre: Tensor, theta: Tensor, active: Tensor, bandwidth: float) -> Tensor:
    """The gate a [n, d_sae] = active (0/1 floats) with the straight-through gradient to pre [n, d_sae]
    and theta (broadcastable to pre: [d_sae], [n, 1] or a scalar) of kernel width ``bandwidth``."""
    if not bandwidth > 0:
        raise ModelError(f"the gate's bandwidth must be positive, got {bandwidth}", param="gate_bandwidth")
    return _Gate.apply(pre, theta.to(pre.dtype), active, float(bandwidth))


class RateModel(nn.Module):
    """The learned part of the rate estimate for d_sae latents: the per-feature value densities
    (mixtures of MIXTURE logistics: ``loc``, ``log_scale``, ``logit`` [d_sae, MIXTURE]), the log
    step (a parameter unless ``step`` is given) and the running firing probabilities ``p`` [d_sae]
    (a buffer). ``bandwidth``: the gate's kernel width, latent units."""

    def __init__(self, d_sae: int, step: float | None = None, bandwidth: float = 1.0):
        super().__init__()
        if step is not None and not (step > 0 and math.isfinite(step)):
            raise ModelError(f"the rate's quantiser step must be a positive number, got {step}", param="rate_step")
        if not bandwidth > 0:
            raise ModelError(f"the gate's bandwidth must be positive, got {bandwidth}", param="gate_bandwidth")
        self.bandwidth = float(bandwidth)
        self.loc = nn.Parameter(torch.zeros(d_sae, MIXTURE))
        self.log_scale = nn.Parameter(torch.zeros(d_sae, MIXTURE))
        self.logit = nn.Parameter(torch.zeros(d_sae, MIXTURE))
        log_step = torch.tensor(math.log(step if step is not None else 1.0))
        self.log_step = nn.Parameter(log_step, requires_grad=step is None)
        self.register_buffer("p", torch.full((d_sae,), 0.5))
        self.started = False

    @property
    def step(self) -> Tensor:
        """The quantiser step s (latent units), a scalar tensor."""
        return self.log_step.exp()

    @torch.no_grad()
    def start(self, z: Tensor) -> None:
        """Initialise from a first batch of latents z [n, d_sae]: p from its firing frequencies, every
        feature's mixture from the quartiles of all its active values, and (when learned) the step at
        half their median."""
        on = z > 0
        self.p.copy_(on.float().mean(0).clamp(P_MIN, 1 - P_MIN))
        vals = z[on]
        if vals.numel() == 0:
            vals = z.new_ones(1)
        q = torch.quantile(vals.float(), torch.tensor([0.25, 0.5, 0.75], device=z.device)).clamp_min(1e-3)
        self.loc.copy_(q.expand_as(self.loc))
        self.log_scale.fill_(math.log(float(q[1]) / 4))
        if self.log_step.requires_grad:
            self.log_step.fill_(math.log(float(q[1]) / 2))
        self.started = True

    @torch.no_grad()
    def observe(self, active: Tensor) -> None:
        """Move the firing probabilities toward a training batch's frequencies (active [n, d_sae] bool)."""
        self.p.mul_(P_DECAY).add_((1 - P_DECAY) * active.float().mean(0)).clamp_(P_MIN, 1 - P_MIN)

    def activity_bits(self, gate: Tensor) -> Tensor:
        """A [n]: bits of each sample's active set under p, for the gate [n, d_sae] (0/1 floats)."""
        on, off = -torch.log2(self.p), -torch.log2(1 - self.p)
        return (gate * on + (1 - gate) * off).sum(1)

    def value_bits(self, y: Tensor, active: Tensor) -> Tensor:
        """V [n]: bits of the (noisy) values y [n, d_sae] of the active latents (active [n, d_sae] bool)
        under the mixtures, each the mass of the width-s bin centred on it."""
        s = self.step
        y = y.unsqueeze(-1)                                   # [n, d_sae, 1]
        inv = torch.exp(-self.log_scale)                      # [d_sae, M]
        hi = torch.sigmoid((y + s / 2 - self.loc) * inv)
        lo = torch.sigmoid((y - s / 2 - self.loc) * inv)
        w = torch.softmax(self.logit, dim=-1)
        mass = ((hi - lo) * w).sum(-1).clamp_min(BIN_MASS_MIN)  # [n, d_sae]
        return torch.where(active, -torch.log2(mass), torch.zeros_like(mass)).sum(1)

    def forward(self, pre: Tensor, z: Tensor, theta: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """For pre-activations pre [n, d_sae], the training latents z [n, d_sae] (active where > 0) and
        the gate's threshold theta (see straight_through_gate): (z_noisy [n, d_sae], the latents to
        reconstruct from, with uniform noise of one step on the active ones; activity bits [n]; value
        bits [n])."""
        if not self.started:
            self.start(z.detach())
        active = z > 0
        gate = straight_through_gate(pre, theta, active, self.bandwidth)
        u = torch.rand(z.shape, generator=generator, dtype=z.dtype).to(z.device) - 0.5
        y = z + self.step * u * gate  # through the gate: a firing's noise reaches its threshold's gradient
        return y, self.activity_bits(gate), self.value_bits(y, active)


BETA_RANGE = (1e-3, 1e3)  # dual ascent keeps beta within these bounds
DUAL_RATE = 1.0           # dual ascent's step on log beta per unit relative MSE error
DUAL_CLIP = 0.1           # the relative error is clipped to +-this


def dual_ascent(log_beta: float, mse: float, target: float, rate: float = DUAL_RATE) -> float:
    """One step of log beta toward the MSE target: log beta + rate * clip((target - mse) / target,
    +-DUAL_CLIP), kept in BETA_RANGE (beta rises while the MSE is under the target, so the rate is
    pressed harder, and falls while it is over). The clip and the bounds keep the first epochs' large
    errors (MSE several times the target) from driving beta to nothing before the SAE can meet it."""
    lo, hi = (math.log(b) for b in BETA_RANGE)
    err = min(DUAL_CLIP, max(-DUAL_CLIP, (target - mse) / target))
    return min(hi, max(lo, log_beta + rate * err))
