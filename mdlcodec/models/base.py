"""The SAE base class, its config, and the registry of architectures.

Every architecture shares one linear encoder and decoder (SAELens' layout):

    W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]

and differs only in the activation that turns pre-activations into sparse latents. Each lives in
its own small module and registers itself with `@register("name")`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from mdlcodec.core.errors import ModelError


@dataclass
class SAEConfig:
    """What defines an SAE besides its weights; JSON-serialisable (saved as mdlcodec_sae.json, cfg.json before).

    arch: registry name ("topk", "batchtopk", "relu", ...). k: active latents per sample (topk) or
    on average over a batch (batchtopk). l1_coeff: weight of the L1 penalty (relu). threshold:
    batchtopk's inference threshold on pre-activations (in the normalised input's units), set by
    training. input_scale: the SAE sees x * input_scale; decode returns the original scale.
    data_rms: root mean square of the raw training inputs (over samples and dimensions), set by
    training so that an encoder can tell inputs on another scale; None where unknown (older models).
    apply_b_dec_to_input: whether the encoder subtracts b_dec from its input first (SAELens' field of
    that name); False for SAEs imported from peers that do not (SAELens with it false,
    dictionary_learning's JumpReluAutoEncoder). The config file names it only when False, so the files of
    every SAE that subtracts b_dec are unchanged. objective: what training minimised, "mdl" for
    MSE + beta * rate (models.rate); None (MSE and the architecture's own penalty, or unknown) is
    left out of the config file.
    """

    arch: str
    d_in: int
    d_sae: int
    k: int | None = None
    l1_coeff: float | None = None
    threshold: float | None = None
    input_scale: float = 1.0
    data_rms: float | None = None
    apply_b_dec_to_input: bool = True
    objective: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The config file's form (models.io): SAELens names the architecture field "architecture"; apply_b_dec_to_input
        appears only when False (the default leaves the file as it was before the field existed)."""
        d = dataclasses.asdict(self)
        if d["apply_b_dec_to_input"] is True:
            del d["apply_b_dec_to_input"]
        if d["objective"] is None:
            del d["objective"]
        return {"architecture": d.pop("arch"), **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SAEConfig":
        d = dict(d)
        if "architecture" not in d:
            raise ModelError("config has no 'architecture' field")
        d["arch"] = d.pop("architecture")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ModelError(f"config has unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ModelError(f"config is incomplete: {e}") from None


def as_float32(v: float) -> float:
    """v rounded to the nearest float32, as a Python float (so the config file and float32 tensors agree)."""
    return float(np.float32(v))


OBJECTIVES = (None, "mse", "mdl")


class SAE(nn.Module):
    """A sparse autoencoder on raw-scale inputs x [n, d_in].

    encode(x) = act((x * input_scale - b_dec) @ W_enc + b_enc): dense latents [n, d_sae], exactly 0
    where inactive, >= 0 elsewhere. decode(z) = (z @ W_dec + b_dec) / input_scale, in x's original
    units; the codec rebuilds activations with exactly this formula from W_dec, b_dec and input_scale.

    Subclasses set `arch`, implement `activate` (inference activation) and may override
    `activate_sparse` (the same activation in sparse form, used by the codec through `encode_sparse`),
    `activate_train` (training activation), `sparsity_penalty`, `observe_train` and `check`.
    """

    arch: ClassVar[str] = ""
    uses_auxk: ClassVar[bool] = False  # whether training adds the AuxK loss for dead latents
    # Whether the training latents are the pre-activations at a selection and 0 elsewhere, passing no
    # gradient where 0 (top-k, a threshold) and with no sparsity penalty: training then decodes only the
    # active rows and backpropagates only the selected pre-activations (models.sparse_decode).
    sparse_train: ClassVar[bool] = False
    # Names of the fixed (untrained) tensors that define the architecture beyond cfg, e.g. the tree's
    # "parents": required keyword arguments of __init__ (and make_sae), registered buffers, saved beside the weights.
    structure: ClassVar[tuple[str, ...]] = ()
    # Names of float32 tensors beyond the four weights that inference reads, e.g. jumprelu's per-latent
    # "threshold": registered buffers made by __init__, saved beside the weights and required on load.
    extra_weights: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        w = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
        w /= w.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.W_dec = nn.Parameter(w)                         # unit-norm rows
        self.W_enc = nn.Parameter(w.T.clone().contiguous())  # tied initialisation
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    @classmethod
    def check(cls, cfg: SAEConfig) -> None:
        """Raise ModelError if cfg does not describe a valid SAE of this architecture."""
        for name in ("d_in", "d_sae", "k"):
            v = getattr(cfg, name)
            if (v is not None or name != "k") and (isinstance(v, bool) or not isinstance(v, int)):
                raise ModelError(f"{name} must be an integer, got {v!r}")
        for name in ("l1_coeff", "threshold", "input_scale", "data_rms"):
            v = getattr(cfg, name)
            if (v is not None or name == "input_scale") and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ModelError(f"{name} must be a number, got {v!r}")
        if not isinstance(cfg.apply_b_dec_to_input, bool):
            raise ModelError(f"apply_b_dec_to_input must be true or false, got {cfg.apply_b_dec_to_input!r}")
        if cfg.objective not in OBJECTIVES:
            raise ModelError(f"objective must be one of {', '.join(map(str, OBJECTIVES))}, got {cfg.objective!r}",
                             param="objective")
        if cfg.d_sae <= 0:
            raise ModelError(f"width (d_sae) must be positive, got {cfg.d_sae}")
        if cfg.d_in <= 0:
            raise ModelError(f"d_in must be positive, got {cfg.d_in}")
        if not cfg.input_scale > 0 or not np.isfinite(cfg.input_scale):
            raise ModelError(f"input_scale must be a positive finite number, got {cfg.input_scale}")
        if cfg.data_rms is not None and not (cfg.data_rms >= 0 and np.isfinite(cfg.data_rms)):
            raise ModelError(f"data_rms must be a finite number >= 0, got {cfg.data_rms}")

    @classmethod
    def check_trainable(cls, cfg: SAEConfig) -> None:
        """Raise ModelError if mdlcodec cannot train (or fine-tune) this architecture; train_sae asks
        before any work. Every architecture trains unless it says otherwise (imported, inference-only ones)."""

    def pre_acts(self, x_scaled: Tensor) -> Tensor:
        """Pre-activations [n, d_sae] of inputs already multiplied by input_scale:
        (x_scaled - b_dec) @ W_enc + b_enc, or x_scaled @ W_enc + b_enc without apply_b_dec_to_input."""
        if not self.cfg.apply_b_dec_to_input:
            return x_scaled @ self.W_enc + self.b_enc
        return (x_scaled - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """Inference activation: pre-activations [n, d_sae] -> latents [n, d_sae] (>= 0, sparse)."""
        raise NotImplementedError

    def activate_train(self, pre: Tensor) -> Tensor:
        """Training activation (the same as `activate` unless the architecture says otherwise)."""
        return self.activate(pre)

    def sparsity_penalty(self, z: Tensor) -> Tensor:
        """Loss term added in training for latents z [n, d_sae] (a scalar; 0 unless overridden)."""
        return z.new_zeros(())

    @torch.no_grad()
    def observe_train(self, z: Tensor) -> None:
        """Called after each training step with that batch's training latents (for running statistics)."""

    def gate_threshold(self, pre: Tensor, z: Tensor) -> Tensor | None:
        """The threshold on pre-activations [n, d_sae] around which the training latents z [n, d_sae]
        switch on (broadcastable to pre), for the rate's straight-through gate (models.rate); None for
        an architecture without a threshold or k, which cannot be trained with objective "mdl"."""
        return None

    def start_training(self, pre: Tensor, bandwidth: float, fresh: bool = True) -> None:
        """Called by the trainer before the first step of an "mdl" training, with a sample's
        pre-activations [n, d_sae] and the gate's kernel width (jumprelu makes its thresholds learnable,
        started from pre unless not ``fresh``: a fine-tuning keeps them)."""

    def finish_training(self) -> None:
        """Undo start_training's changes to the module's layout once training ends."""

    def encode(self, x: Tensor) -> Tensor:
        """Raw-scale inputs [n, d_in] -> latents [n, d_sae]."""
        return self.activate(self.pre_acts(x * self.cfg.input_scale))

    def activate_sparse(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        """`activate` in sparse form: pre-activations [n, d_sae] -> (values [n, m], indices [n, m]), see
        encode_sparse. This version reads them off the dense `activate`; architectures whose activation
        selects latents directly (top-k, a threshold) override it to skip the dense latents."""
        z = self.activate(pre)
        return compact_sparse(z, torch.arange(z.shape[1], device=z.device).expand_as(z))

    def encode_sparse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw-scale inputs [n, d_in] -> each row's active latents, as sparsify's encode gives them:
        values [n, m] float32 and indices [n, m] int64, m the most active latents of any row; a row
        with fewer is padded with value 0 (at an index that means nothing). The nonzero values are
        bit for bit those of encode(x) at the same (row, index): the same pre-activations, the same
        arithmetic. Indices are distinct within a row, in no particular order."""
        return self.activate_sparse(self.pre_acts(x * self.cfg.input_scale))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A subclass that changes the dense activation but not the sparse one would encode differently
        # in the codec than in training: its sparse form falls back to reading off the dense one.
        if "activate" in cls.__dict__ and "activate_sparse" not in cls.__dict__:
            cls.activate_sparse = SAE.activate_sparse

    def decode(self, z: Tensor) -> Tensor:
        """Latents [n, d_sae] -> reconstructions [n, d_in] in the raw scale: (z @ W_dec + b_dec) / input_scale."""
        return (z @ self.W_dec + self.b_dec) / self.cfg.input_scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [n, d_in] -> (x_hat [n, d_in], z [n, d_sae])."""
        z = self.encode(x)
        return self.decode(z), z


ARCHITECTURES: dict[str, type[SAE]] = {}


def register(name: str):
    """Class decorator: make an SAE subclass available as `arch=name`."""
    def deco(cls: type[SAE]) -> type[SAE]:
        cls.arch = name
        ARCHITECTURES[name] = cls
        return cls
    return deco


def architecture(cfg: SAEConfig) -> type[SAE]:
    """The registered class of cfg.arch, after checking cfg against it (ModelError if unknown or invalid)."""
    if not isinstance(cfg.arch, str) or cfg.arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {cfg.arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    cls = ARCHITECTURES[cfg.arch]
    cls.check(cfg)
    return cls


def make_sae(cfg: SAEConfig, generator: torch.Generator | None = None, **structure) -> SAE:
    """A freshly initialised SAE for cfg (random unit-norm decoder rows, tied encoder, zero biases).

    structure: the architecture's fixed tensors named in its `structure` (tree: parents=[d_sae] ints)."""
    cls = architecture(cfg)
    unexpected = sorted(set(structure) - set(cls.structure))
    if unexpected:
        raise ModelError(f"{cfg.arch} SAE takes no {', '.join(unexpected)}")
    return cls(cfg, generator, **structure)


ENCODE_BUDGET_BYTES = 64 << 20
"""Batches that run an SAE's encoder hold at most this many bytes of float32 pre-activations [rows, d_sae] (64 MiB)."""


def encode_batch_rows(d_sae: int) -> int:
    """Rows per batch when encoding with an SAE of d_sae latents (the codec's encoder, evaluate):
    ENCODE_BUDGET_BYTES // (4 * d_sae) clamped to [64, 4096], so that one batch's dense pre-activations
    stay within 64 MiB (4,096 latents or fewer: 4,096 rows; 16,384: 1,024; 262,144 and more: 64)."""
    return int(min(4096, max(64, ENCODE_BUDGET_BYTES // (4 * max(1, int(d_sae))))))


def compact_sparse(values: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Each row's nonzero entries of (values, indices) [n, w] moved to the front, in their order, and
    the columns that are zero in every row dropped: [n, m], m the most nonzeros of any row."""
    on = values != 0
    m = int(on.sum(1).max()) if values.shape[0] else 0
    order = on.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, :m]
    return values.gather(1, order), indices.gather(1, order)


def check_k(cfg: SAEConfig) -> None:
    """Shared check for architectures that take k active latents."""
    if cfg.k is None:
        raise ModelError(f"{cfg.arch} needs k, the number of active latents per sample", param="k")
    if not 1 <= cfg.k <= cfg.d_sae:
        raise ModelError(f"{cfg.arch} needs 1 <= k <= width ({cfg.d_sae}), got k={cfg.k}")
