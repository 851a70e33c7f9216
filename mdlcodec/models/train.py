"""One trainer for every architecture.

Per step on a shuffled batch of the (optionally normalised) inputs:
  loss = sum over d_in of squared error, mean over the batch
       + the architecture's sparsity penalty (L1 for relu)
       + auxk_alpha * AuxK loss (topk, batchtopk): the k_aux largest pre-activations of the dead
         latents reconstruct the main model's residual (Gao et al. 2024), scaled by
         min(1, n_dead / k_aux).
Adam; before each step the gradient's component parallel to each decoder row is removed and after
it the rows are renormalised to unit length. b_dec starts at the geometric median of a subsample.
A latent is dead when it has not fired on the last `dead_after` training tokens (samples).
For topk, batchtopk and tree (SAE.sparse_train) the mse training decodes from the k active latents
only and backpropagates only the selected pre-activations (models.sparse_decode); Adam is fused
where torch has it. After each epoch
the raw-scale MSE on held-out data decides early stopping; the best epoch's weights are returned.
On CPU a seed fixes everything: the same seed gives bit-identical weights.

Objective "mdl" (description length; architectures with a threshold or k: jumprelu, batchtopk,
topk): the loss adds beta * R, R the rate estimate of models.rate (activity + value bits per
sample, mean over the batch), and reconstructs from the latents with one quantiser step of uniform
noise on the active values, so the MSE term includes quantisation. beta is in the loss's units
(squared error of the normalised input, summed over d_in) per bit: fixed (tcfg.beta), or, with
tcfg.target_mse, steered by dual ascent after every step (models.rate.dual_ascent: log beta +=
clip((t - m) / t, +-0.1), beta kept in [1e-3, 1e3]), m the batch's raw-scale MSE (per dimension,
with the noise) and t = TARGET_FRACTION * target_mse (room for the test data's larger error and
the codec's own choice of step); beta starts at tcfg.beta, else DEFAULT_BETA. There is no early stopping (beta moves the MSE on purpose):
the last epoch's weights are returned, after the learning rate has decayed to 0.

Training data that is a shard folder's lazy ShardedRows is never loaded whole: its batches come from
``data.stream.ShuffleStream`` (shards in a seeded order, a shuffle buffer of tcfg.shuffle_buffer
rows); input_scale and data_rms come from one exact streaming pass (float64 sums) over the rows
trained on, the geometric median from a seeded sample of MEDIAN_SAMPLES of them, dead latents from
the training batches as always, and the held-out rows (when no val is given) are a seeded set of
round(val_fraction * n) rows, at most shuffle_buffer of them, that the stream leaves out. Any other
training data (arrays, tensors) is loaded into memory and shuffled whole, as before.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.core.progress import ProgressBar
from mdlcodec.data.shards import ShardedRows
from mdlcodec.data.stream import DEFAULT_BUFFER_ROWS, ShuffleStream, seeded_rng
from mdlcodec.models.base import SAE, SAEConfig, architecture, as_float32, make_sae
from mdlcodec.models.evaluate import evaluate
from mdlcodec.models.rate import RateModel, dual_ascent
from mdlcodec.models.sparse_decode import sparse_decode, sparse_grad_pre_acts

MEDIAN_SAMPLES = 4096    # subsample for the geometric median
MEDIAN_ITERATIONS = 20   # Weiszfeld iterations
OBJECTIVES = ("mse", "mdl")
DEFAULT_BETA = 0.5       # objective mdl: beta without tcfg.beta (with target_mse: where dual ascent starts)
TARGET_FRACTION = 0.8    # objective mdl: the training MSE is steered to this share of target_mse
_VAL_SEED_KEY, _MEDIAN_SEED_KEY, _RATE_SEED_KEY = 1, 2, 3  # streams' seed keys (data.stream.seeded_rng(seed, 0, key)): held-out rows, median sample, the rate model's start


@dataclass
class TrainConfig:
    """Training settings. lr: Adam step size (the default suits narrow SAEs such as MNIST's 128; on
    SmolLM2-135M's residual stream at width 4,608, k 64, 3 epochs, 4e-3 left 51% of the latents dead
    on the test split and 1e-3 2.4%: bench/train_speed.py); batch_size, epochs: samples per step and passes over
    the data (at most); lr rises linearly from lr / lr_warmup_steps to lr over the first
    `lr_warmup_steps` steps and decays linearly to 0 over the last `lr_decay_fraction` of the steps;
    normalize: scale inputs so that the mean squared norm of x * input_scale is d_in; auxk_alpha,
    k_aux (default d_in // 2): the AuxK loss; dead_after: the dead-latent window, in training tokens
    (samples): a latent that has not fired on the last dead_after tokens trained on is dead (it gets
    the AuxK loss; the history's "dead" counts them, "dead_window" repeats the window); patience: epochs without a relative improvement of `min_improvement` in
    held-out MSE before stopping; val_fraction: share of the training data held out when no
    validation data is given; progress: report on stderr (core.progress.ProgressBar: a bar on a
    terminal, a line every few seconds otherwise); False is silent. objective: "mse", or "mdl" (see
    the module docstring) with beta (normalised squared error per bit) and/or target_mse (raw units,
    per dimension: beta starts at beta and follows it), rate_step (the quantiser step of the rate's
    noise, latent units; None: learned) and gate_bandwidth (the straight-through kernel's width,
    latent units); shuffle_buffer: rows in the shuffle buffer when the training data is streamed (a shard folder,
    see the module docstring); sparse: decode from the active latents only and backpropagate only
    the selected pre-activations (models.sparse_decode) where the architecture allows it
    (SAE.sparse_train, objective mse); False computes the same with dense products (slower)."""

    lr: float = 4e-3
    batch_size: int = 256
    epochs: int = 100
    lr_decay_fraction: float = 0.2
    lr_warmup_steps: int = 0
    normalize: bool = True
    auxk_alpha: float = 1 / 32
    k_aux: int | None = None
    dead_after: int = 5_000
    patience: int = 20
    min_improvement: float = 1e-3
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    objective: str = "mse"
    beta: float | None = None
    target_mse: float | None = None
    rate_step: float | None = None
    gate_bandwidth: float = 1.0
    shuffle_buffer: int = DEFAULT_BUFFER_ROWS
    sparse: bool = True


@dataclass
class TrainResult:
    """history: one dict per epoch (loss terms on the training batches, mean L0, dead latents at the
    end of the epoch, held-out raw-scale MSE); best_epoch: the epoch whose weights were kept."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def geometric_median(x: Tensor, iterations: int = MEDIAN_ITERATIONS) -> Tensor:
    """Weiszfeld's iteration for the point minimising the summed distance to the rows of x [n, d]."""
    x = x.double()
    m = x.mean(0)
    for _ in range(iterations):
        w = 1.0 / (x - m).norm(dim=1).clamp_min(1e-8)
        m = (w[:, None] * x).sum(0) / w.sum()
    return m.float()


def input_scale_for(x: Tensor) -> float:
    """The factor s with mean ||s * x||^2 = d_in (1 for all-zero data), rounded to float32."""
    return _scale_from(float(x.double().pow(2).sum(1).mean()), x.shape[1])


def _scale_from(mean_sq_norm: float, d_in: int) -> float:
    return as_float32(math.sqrt(d_in / mean_sq_norm)) if mean_sq_norm > 0 else 1.0


def data_rms(x: Tensor) -> float:
    """Root mean square of x [n, d] over all its entries, rounded to float32 (saved as cfg.data_rms)."""
    return as_float32(math.sqrt(float(x.double().pow(2).mean())))


def _open_stream(train: ShardedRows, val, tcfg: TrainConfig, d_in: int) -> tuple[ShuffleStream, object]:
    """The stream of the training rows and the held-out rows: ``val`` if given (read lazily by
    evaluate), else a seeded set of round(val_fraction * n) rows (at most shuffle_buffer, at least 1),
    loaded, which the stream leaves out."""
    n = len(train)
    if train.shape[1] != d_in or n == 0:
        raise ModelError(f"training data has shape {list(train.shape)}, the SAE expects [n >= 1, {d_in}] (d_in={d_in})")
    if val is not None:
        if len(val.shape) != 2 or val.shape[1] != d_in or len(val) == 0:
            raise ModelError(f"validation data has shape {list(val.shape)}, the SAE expects [n >= 1, {d_in}]")
        return ShuffleStream(train, tcfg.batch_size, tcfg.seed, tcfg.shuffle_buffer), val
    if n < 2:
        raise ModelError("training data needs at least 2 samples to hold some out for validation")
    n_val = min(n - 1, max(1, round(tcfg.val_fraction * n)), max(1, tcfg.shuffle_buffer))
    held = np.sort(seeded_rng(tcfg.seed, 0, _VAL_SEED_KEY).choice(n, n_val, replace=False))
    v = torch.from_numpy(np.asarray(train[held], dtype=np.float32))
    return ShuffleStream(train, tcfg.batch_size, tcfg.seed, tcfg.shuffle_buffer, exclude=held), v


def _as_tensor(x, what: str, d_in: int) -> Tensor:
    if not isinstance(x, Tensor):
        a = np.ascontiguousarray(x, dtype=np.float32)
        x = torch.from_numpy(a if a.flags.writeable else a.copy())  # read-only memmaps are copied
    if x.ndim != 2 or x.shape[1] != d_in:
        raise ModelError(f"{what} has shape {list(x.shape)}, the SAE expects [n, {d_in}] (d_in={d_in})")
    if x.shape[0] == 0:
        raise ModelError(f"{what} is empty")
    return x.float()


def check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available here", param="device")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelError(f"unknown device {device!r}; use cpu or cuda")


def _auxk_loss(sae: SAE, pre: Tensor, residual: Tensor, dead: Tensor, k_aux: int) -> Tensor:
    """Squared error (summed over d_in, mean over the batch) of the residual [n, d_in] against its
    reconstruction by the top-k_aux dead latents' positive pre-activations, times min(1, n_dead / k_aux).
    Only the dead latents' columns of pre [n, d_sae] and rows of W_dec are read (a sparse decode)."""
    dead_idx = dead.nonzero().squeeze(1)
    k = min(k_aux, len(dead_idx))
    vals, j = pre[:, dead_idx].topk(k, dim=1)
    rec = F.embedding_bag(dead_idx[j], sae.W_dec, mode="sum", per_sample_weights=vals.relu())
    return (rec - residual).pow(2).sum(1).mean() * min(1.0, len(dead_idx) / k_aux)


def _adam(params: list, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch has it for the parameters' device (CPU from torch
    2.4: about 8x faster a step than the default at 5M parameters), else the default implementation."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


@torch.no_grad()
def _project_decoder_grad(W: torch.nn.Parameter) -> None:
    """Remove from W.grad each row's component along the (unit) row, so a step barely changes its norm."""
    if W.grad is not None:
        W.grad -= (W.grad * W).sum(1, keepdim=True) * W


def _check_init(cfg: SAEConfig, init: SAE, structure: dict) -> None:
    """Refuse a warm start whose SAE does not fit cfg, or that also gets structure tensors."""
    if structure:
        raise ModelError(f"give {', '.join(sorted(structure))} or an initial SAE, not both")
    for name in ("arch", "d_in", "d_sae"):
        if getattr(cfg, name) != getattr(init.cfg, name):
            raise ModelError(f"the initial SAE has {name}={getattr(init.cfg, name)!r}, the config asks for "
                             f"{getattr(cfg, name)!r}")
    type(init).check(cfg)


def _check_objective(tcfg: TrainConfig) -> None:
    """Refuse an unknown objective, or rate settings that do not fit it (ModelError naming the setting)."""
    if tcfg.objective not in OBJECTIVES:
        raise ModelError(f"unknown objective {tcfg.objective!r}; known: {', '.join(OBJECTIVES)}", param="objective")
    given = [n for n in ("beta", "target_mse", "rate_step") if getattr(tcfg, n) is not None]
    if tcfg.objective != "mdl" and given:
        raise ModelError(f"{', '.join(given)} only apply to objective mdl", param="objective")
    for n in ("beta", "target_mse", "rate_step", "gate_bandwidth"):
        v = getattr(tcfg, n)
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ModelError(f"{n} must be a positive number, got {v}", param=n)


def _start_rate(sae: SAE, xs: Tensor, gen: torch.Generator, tcfg: TrainConfig, fresh: bool = True) -> RateModel:
    """The rate model of an "mdl" training, started on a subsample of the normalised inputs xs; the SAE
    gets its start_training call. ModelError for an architecture without a threshold or k."""
    with torch.no_grad():
        sub = xs[torch.randperm(xs.shape[0], generator=gen)[:MEDIAN_SAMPLES].to(xs.device)]
        pre = sae.pre_acts(sub)
        if sae.gate_threshold(pre, sae.activate_train(pre)) is None:
            raise ModelError(f"objective mdl needs an architecture with a threshold or k (jumprelu, batchtopk, "
                             f"topk), not {sae.cfg.arch}", param="objective")
    sae.start_training(pre, tcfg.gate_bandwidth, fresh)
    rate = RateModel(sae.cfg.d_sae, tcfg.rate_step, tcfg.gate_bandwidth)
    with torch.no_grad():
        rate.start(sae.activate_train(pre).to(xs.device))
    return rate


def train_sae(cfg: SAEConfig, train, val=None, tcfg: TrainConfig | None = None, init: SAE | None = None,
              **structure) -> tuple[SAE, TrainResult]:
    """Train a fresh SAE described by cfg on raw-scale train [n, d_in] (numpy or tensor; loaded
    whole into memory on tcfg.device).

    val [m, d_in]: held-out data for early stopping (MSE in raw units per dimension); if None the
    last val_fraction of a seeded shuffle of train is held out. structure: the architecture's fixed
    tensors, as for make_sae (tree: parents=[d_sae] ints). init: fine-tune a copy of this SAE instead
    (its weights, input_scale, threshold and structure; cfg must name its architecture and shape and
    may change k or l1_coeff; tcfg.normalize is ignored). Returns the SAE of the best epoch (in eval
    mode, on tcfg.device; cfg.input_scale, cfg.data_rms (of the rows trained on) and, for batchtopk,
    cfg.threshold filled in) and the TrainResult.
    """
    tcfg = tcfg or TrainConfig()
    check_device(tcfg.device)
    if tcfg.batch_size <= 0 or tcfg.epochs <= 0 or tcfg.lr <= 0:
        raise ModelError("batch size, epochs and learning rate must be positive")
    if isinstance(tcfg.lr_warmup_steps, bool) or not isinstance(tcfg.lr_warmup_steps, int) or tcfg.lr_warmup_steps < 0:
        raise ModelError(f"lr_warmup_steps must be an integer >= 0, got {tcfg.lr_warmup_steps!r}", param="lr_warmup_steps")
    _check_objective(tcfg)
    cfg = copy.deepcopy(cfg)
    if tcfg.objective == "mdl":
        cfg.objective = "mdl"
    architecture(cfg).check_trainable(cfg)  # an inference-only (imported) architecture refuses before any work
    if init is None:
        make_sae(cfg, torch.Generator(), **structure)  # validates cfg before any work
    else:
        _check_init(cfg, init, structure)
    gen = torch.Generator().manual_seed(tcfg.seed)
    dev = torch.device(tcfg.device)
    if isinstance(train, ShardedRows):  # streamed, never loaded whole
        return _train(cfg, tcfg, gen, dev, structure, init, *_open_stream(train, val, tcfg, cfg.d_in))
    x = _as_tensor(train, "training data", cfg.d_in)
    if val is None:
        if x.shape[0] < 2:
            raise ModelError("training data needs at least 2 samples to hold some out for validation")
        perm = torch.randperm(x.shape[0], generator=gen)
        n_val = min(x.shape[0] - 1, max(1, round(tcfg.val_fraction * x.shape[0])))
        x, v = x[perm[n_val:]], x[perm[:n_val]]
    else:
        v = _as_tensor(val, "validation data", cfg.d_in)
    return _train(cfg, tcfg, gen, dev, structure, init, x, v)


def _train(cfg: SAEConfig, tcfg: TrainConfig, gen: torch.Generator, dev: torch.device, structure: dict,
           init: SAE | None, x: Tensor | ShuffleStream, v) -> tuple[SAE, TrainResult]:
    """train_sae's loop on x: the training rows in memory [n, d_in], or a stream of them; v: held out."""
    stream = x if isinstance(x, ShuffleStream) else None
    if stream is not None:  # one ordered pass: the same figures as the in-memory formulas, summed in float64
        msn = stream.sum_of_squares() / stream.n_rows
        cfg.data_rms = as_float32(math.sqrt(msn / cfg.d_in))
    else:
        cfg.data_rms = data_rms(x)  # the scale of the data trained on, for the codec's scale warning

    if init is None:
        if not tcfg.normalize:
            cfg.input_scale = 1.0
        else:
            cfg.input_scale = _scale_from(msn, cfg.d_in) if stream is not None else input_scale_for(x)
        cfg.threshold = None
        sae = make_sae(cfg, gen, **structure)
    else:
        cfg.input_scale, cfg.threshold = init.cfg.input_scale, init.cfg.threshold
        sae = copy.deepcopy(init).cpu()
        sae.cfg = cfg
    if stream is None:
        xs = (x * cfg.input_scale).to(dev)
        v = v.to(dev)
    if init is None:
        with torch.no_grad():
            if stream is None:
                sub = torch.randperm(xs.shape[0], generator=gen)[:MEDIAN_SAMPLES]
                sae.b_dec.copy_(geometric_median(xs[sub.to(dev)].cpu()))
            else:
                sub = torch.from_numpy(stream.sample(MEDIAN_SAMPLES, _MEDIAN_SEED_KEY)) * cfg.input_scale
                sae.b_dec.copy_(geometric_median(sub))
    sae.to(dev).train()
    rate, log_beta = None, math.log(tcfg.beta if tcfg.beta is not None else DEFAULT_BETA)
    if tcfg.objective == "mdl":
        start = xs if stream is None else torch.from_numpy(stream.sample(MEDIAN_SAMPLES, _RATE_SEED_KEY)).to(dev) * cfg.input_scale
        rate = _start_rate(sae, start, gen, tcfg, fresh=init is None).to(dev)

    n = stream.n_rows if stream is not None else xs.shape[0]
    bs = min(tcfg.batch_size, n)
    steps_per_epoch = stream.steps_per_epoch if stream is not None else n // bs

    def batches(epoch: int):
        """The epoch's steps_per_epoch batches [bs, d_in], input-scaled, on dev."""
        if stream is not None:
            for b in stream.epoch(epoch):
                yield torch.from_numpy(b).to(dev) * cfg.input_scale
            return
        order = torch.randperm(n, generator=gen).to(dev)
        for step in range(steps_per_epoch):
            yield xs[order[step * bs:(step + 1) * bs]]
    total = steps_per_epoch * tcfg.epochs
    decay_from = int(total * (1 - tcfg.lr_decay_fraction))
    warmup = min(tcfg.lr_warmup_steps, decay_from)
    opt = _adam([*sae.parameters(), *(rate.parameters() if rate is not None else ())], tcfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warmup if s < warmup else 1.0 if s < decay_from
                                              else max(0.0, (total - s) / max(1, total - decay_from)))
    sparse = sae.sparse_train and rate is None and tcfg.sparse
    k_aux = tcfg.k_aux or max(1, cfg.d_in // 2)
    since_fired = torch.zeros(cfg.d_sae, dtype=torch.long, device=dev)

    result, best_state, bad_epochs, t0 = TrainResult(), None, 0, time.perf_counter()
    best_mse = ref_mse = math.inf  # best held-out MSE; the last one that counted as an improvement
    bar = ProgressBar(total, f"train {cfg.arch} w{cfg.d_sae}", enabled=tcfg.progress)
    last_val: dict[str, str] = {}  # the last epoch's held-out MSE, shown beside the running figures
    for epoch in range(1, tcfg.epochs + 1):
        sums = torch.zeros(5, dtype=torch.float64, device=dev)  # loss, mse part, aux part, L0, rate bits
        for step, xb in enumerate(batches(epoch)):
            pre = sparse_grad_pre_acts(sae, xb) if sparse else sae.pre_acts(xb)
            z = sae.activate_train(pre)
            z_rec, bits = z, torch.zeros((), device=dev)
            if rate is not None:  # objective mdl: reconstruct from noisy values, add beta * rate
                z_rec, act_bits, val_bits = rate(pre, z, sae.gate_threshold(pre, z), gen)
                bits = (act_bits + val_bits).mean()
            x_hat = (sparse_decode(z_rec, sae.W_dec) if sparse else z_rec @ sae.W_dec) + sae.b_dec
            mse = (x_hat - xb).pow(2).sum(1).mean()
            loss = mse + sae.sparsity_penalty(z) + (math.exp(log_beta) * bits if rate is not None else 0.0)
            dead = since_fired >= tcfg.dead_after
            aux = torch.zeros((), device=dev)
            if sae.uses_auxk and tcfg.auxk_alpha > 0 and bool(dead.any()):
                aux = _auxk_loss(sae, pre, (xb - x_hat).detach(), dead, k_aux)
                loss = loss + tcfg.auxk_alpha * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _project_decoder_grad(sae.W_dec)
            opt.step()
            sched.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
                fired = (z > 0).any(0)
                since_fired += bs
                since_fired[fired] = 0
                sae.observe_train(z)
                l0 = (z > 0).sum(1).double().mean()
                sums += torch.stack([loss.detach().double(), mse.detach().double(), aux.detach().double(), l0,
                                     bits.detach().double()])
                if rate is not None:
                    rate.observe(z > 0)
                    if tcfg.target_mse is not None:
                        raw = float(mse.detach()) / (cfg.d_in * cfg.input_scale ** 2)
                        log_beta = dual_ascent(log_beta, raw, TARGET_FRACTION * tcfg.target_mse)
            bar.update(1)
            if step % 10 == 0 and tcfg.progress:
                bar.set_figures(epoch=f"{epoch}/{tcfg.epochs}", loss=f"{float(loss.detach()):.4g}",
                                L0=f"{float(l0):.1f}",
                                mse=f"{float(mse.detach()) / (cfg.d_in * cfg.input_scale ** 2):.4g}", **last_val)
        sae.eval()
        val_mse = evaluate(sae, v)["mse"]
        sae.train()
        s = (sums / max(1, steps_per_epoch)).tolist()
        result.history.append({"epoch": epoch, "loss": s[0], "mse_loss": s[1], "auxk_loss": s[2], "l0": s[3],
                               "dead": int((since_fired >= tcfg.dead_after).sum()), "dead_window": tcfg.dead_after,
                               "val_mse": val_mse,
                               "lr": opt.param_groups[0]["lr"]})
        last_val = {"val_mse": f"{val_mse:.4g}"}
        bar.set_figures(epoch=f"{epoch}/{tcfg.epochs}", loss=f"{s[0]:.4g}", L0=f"{s[3]:.1f}", **last_val)
        if rate is not None:
            result.history[-1].update(rate_bits=s[4], beta=math.exp(log_beta), rate_step=float(rate.step.detach()))
            result.best_epoch = epoch  # no early stopping: the last epoch's weights
            continue
        if val_mse < best_mse:
            best_mse = val_mse
            best_state = ({k: t.detach().clone() for k, t in sae.state_dict().items()}, copy.deepcopy(sae.cfg))
            result.best_epoch = epoch
        if val_mse < ref_mse * (1 - tcfg.min_improvement):
            ref_mse, bad_epochs = val_mse, 0
        else:
            bad_epochs += 1
            if bad_epochs >= tcfg.patience:
                result.stopped_early = True
                break
    bar.close()
    sae.finish_training()
    if best_state is not None:
        sae.load_state_dict(best_state[0])
        sae.cfg = best_state[1]
    result.seconds = time.perf_counter() - t0
    return sae.eval(), result
