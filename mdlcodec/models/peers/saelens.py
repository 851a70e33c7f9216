"""SAELens (v6): a folder with cfg.json and sae_weights.safetensors, in and out.

SAELens' inference SAEs share mdlcodec's layout (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in],
b_dec) and computation, sae_in = x - b_dec * apply_b_dec_to_input, pre = sae_in @ W_enc + b_enc,
recon = z @ W_dec + b_dec; they differ in the activation:

- standard: relu(pre) -> mdlcodec relu (SAELens keeps no L1 coefficient: l1_coeff 0);
- topk: the k largest of pre, then relu -> mdlcodec topk (the same active latents). With
  rescale_acts_by_decoder_norm SAELens ranks and returns pre * ||W_dec[i]|| and divides the latents
  by the norms again before decoding: the norms are folded into the weights at import (W_enc and
  b_enc times the norm, W_dec rows divided by it), which gives the same latents and reconstructions;
- jumprelu: relu(pre) * (pre > threshold[i]) -> mdlcodec jumprelu with the same thresholds. SAELens
  saves its BatchTopK (and Matryoshka) training SAEs for inference this way, the batch threshold
  copied to every latent.

apply_b_dec_to_input false becomes mdlcodec's flag of the same name.

normalize_activations, as SAELens 6.54.12's own code treats it (files named under sae_lens/):

- "expected_average_only_in": SAETrainer.fit (training/sae_trainer.py) first estimates
  s = sqrt(d_in) / (the mean norm of n_batches_for_norm_estimate batches of activations)
  (ActivationScaler.estimate_scaling_factor, training/activation_scaler.py) and trains on x * s
  (SAETrainer.step: activation_scaler(batch)). When training ends it calls
  SAE.fold_activation_norm_scaling_factor(s) (saes/sae.py: W_enc * s, W_dec / s, b_dec / s; b_enc
  and a JumpReLU threshold unchanged, since the pre-activations do not change), which sets
  normalize_activations to "none": the SAE the training runner saves (save_final_sae ->
  save_inference_model) says "none" and takes raw activations. The value survives on disk only in a
  checkpoint saved during training (save_checkpoint -> save_model, before the fold), which keeps s
  beside cfg.json in activation_scaler.json ({"scaling_factor": s, "has_whitening": false}), and in
  pretrained releases whose s SAELens lists in pretrained_saes.yaml (norm_scaling_factor, folded by
  SAE.from_pretrained). SAE.load_from_disk applies no scaling to such files
  (SAE._setup_activation_normalization: identity for every value but constant_norm_rescale and
  layer_norm), so that SAE expects its inputs already multiplied by s. The import folds s from
  activation_scaler.json as fold_activation_norm_scaling_factor does (before rescale_acts_by_decoder_norm
  is folded), so the mdlcodec SAE computes on raw activations what SAELens' folded SAE computes: the
  trainer's latents on x * s (divided by s where top-k rescales by decoder norms, whose norms the fold
  divides by s) and its reconstruction in raw units; without that file s is in neither saved file
  and the import is refused in one line.
- "covariance_whitening" (z = (x - mean) @ M, folded by fold_activation_whitening when training
  ends, which also sets "none"): only a checkpoint says so; refused.
- "constant_norm_rescale" and "layer_norm" rescale each input by its own norm at run time, which no
  fixed affine encoder reproduces: refused.
- true and null, in older files, are read as handle_config_defaulting (loading/pretrained_sae_loaders.py)
  reads them: expected_average_only_in and none.

Export writes an mdlcodec SAE in the same format (cfg.json with the fields SAELens 6 writes), its
input_scale s folded in so that the files compute the same function on raw inputs and keep SAELens'
and SAEBench's convention of unit-norm decoder rows (mdlcodec trains them unit-norm on x * s): the
latents are divided by s instead of the decoder, W_enc and W_dec unchanged, b_enc / s, b_dec / s and
thresholds / s (pre-activations scale by 1 / s, so the same latents are active and top-k ranks them
the same). metadata names the model and hook when given (model_name, hook_name: see
data.harvest.saelens_provenance) and the scale the latents were divided by (mdlcodec_input_scale).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import safetensors.torch
import torch

from mdlcodec import __version__
from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAE, SAEConfig
from mdlcodec.models.formats import read_json_object
from mdlcodec.models.io import write_folder
from mdlcodec.models.peers.common import (
    Imported,
    build,
    check_names,
    flag,
    positive_int,
    read_safetensors,
    weight,
)

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
ARCHITECTURES = ("standard", "topk", "jumprelu")
TRAINING_ARCHITECTURES = ("batchtopk", "matryoshka_batchtopk")  # SAELens saves these for inference as jumprelu
FORMAT_VERSION = "6.54.12"  # the SAELens release whose files export copies (../shared/peers/saelens-*)
NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm", "covariance_whitening")
SCALER_FILE = "activation_scaler.json"  # a SAELens training checkpoint's ActivationScaler.save
NO_SCALING_FACTOR = ("normalize_activations is 'expected_average_only_in': the weights take activations multiplied "
                     "by sqrt(d_in) / their mean norm in training, a factor that is in neither cfg.json nor the "
                     "weights and that SAELens applies only during training, folding it into the weights at the end")
RESHAPES = ("none", "hook_z")
WEIGHT_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")


def _major_version(v: Any) -> int | None:
    try:
        return int(str(v).split(".")[0])
    except ValueError:
        return None


def _as_v6(cfg: dict[str, Any], where: Path) -> dict[str, Any]:
    """A cfg.json read as SAELens 6 reads it: files written before 6.0 (no sae_lens_version of 6 or
    more, at the top or in metadata) name the activation in activation_fn(_str) and may lack the
    architecture (standard), which is then topk when the activation is topk with a k."""
    metadata = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    version = cfg.get("sae_lens_version") or metadata.get("sae_lens_version")
    major = _major_version(version) if version else None
    if major is not None and major >= 6:
        return cfg
    cfg = dict(cfg)
    activation = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
    if not isinstance(activation, str):
        raise ModelError(f"{where}: activation function {activation!r} is not a name")
    cfg.setdefault("architecture", "standard")
    kwargs = cfg.get("activation_fn_kwargs") or {}
    if activation == "topk" and isinstance(kwargs, dict) and kwargs.get("k") is not None:
        cfg["architecture"], cfg["k"] = "topk", kwargs["k"]
    elif cfg["architecture"] == "standard" and activation != "relu":
        raise ModelError(f"{where}: activation function {activation!r} is not supported (relu or topk with a k)")
    return cfg


def import_saelens(folder: str | Path) -> Imported:
    """The SAE SAELens saved in folder (its save_model or save_inference_model) as an mdlcodec SAE."""
    d = Path(folder)
    cfg_path, w_path = d / CFG_FILE, d / WEIGHTS_FILE
    return convert_saelens(read_json_object(cfg_path), lambda: read_safetensors(w_path), cfg_path, w_path,
                           lambda: _scaling_factor(d / SCALER_FILE, cfg_path))


def _scaling_factor(path: Path, cfg_path: Path) -> float:
    """The activation scaling factor a SAELens training checkpoint keeps in activation_scaler.json;
    ModelError (one line) if the file is absent or holds no positive finite number."""
    if not path.exists():
        raise ModelError(f"{cfg_path}: {NO_SCALING_FACTOR}; no {SCALER_FILE} (a training checkpoint's) is beside "
                         "it: fold the factor in with SAELens (sae.fold_activation_norm_scaling_factor(factor), "
                         "then save_model) and import that")
    s = read_json_object(path).get("scaling_factor")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise ModelError(f"{path}: scaling_factor is {s!r}, expected a positive number (cfg.json says "
                         "expected_average_only_in)")
    return float(s)


def convert_saelens(cfg: dict[str, Any], tensors: Callable[[], dict[str, torch.Tensor]], cfg_path: str | Path,
                    w_path: str | Path, scaling_factor: Callable[[], float] | None = None) -> Imported:
    """SAELens' cfg.json fields and (read when the config passes) its tensors as an mdlcodec SAE;
    cfg_path and w_path name them in errors (files, or an object in memory). scaling_factor gives
    the factor of normalize_activations "expected_average_only_in" (folded in; without it, refused)."""
    cfg = _as_v6(cfg, cfg_path)
    arch = cfg.get("architecture")
    if arch in TRAINING_ARCHITECTURES:
        raise ModelError(f"{cfg_path}: architecture {arch!r} is a SAELens training SAE; save it with "
                         "save_inference_model (which makes it jumprelu) and import that")
    if arch not in ARCHITECTURES:
        raise ModelError(f"{cfg_path}: SAELens architecture {arch!r} is not supported (supported: "
                         f"{', '.join(ARCHITECTURES)})")
    d_in, d_sae = positive_int(cfg, "d_in", cfg_path), positive_int(cfg, "d_sae", cfg_path)
    apply_b_dec = flag(cfg, "apply_b_dec_to_input", cfg_path, True)
    if flag(cfg, "finetuning_scaling_factor", cfg_path, False):
        raise ModelError(f"{cfg_path}: finetuning_scaling_factor is not supported")
    warnings = []
    norm = cfg.get("normalize_activations")  # older files: a bool (handle_config_defaulting's reading) or null
    norm = "expected_average_only_in" if norm is True else "none" if norm is None or norm is False else norm
    if not isinstance(norm, str) or norm not in NORMALIZATIONS:
        raise ModelError(f"{cfg_path}: unknown normalize_activations {norm!r} (SAELens knows "
                         f"{', '.join(NORMALIZATIONS)})")
    if norm in ("constant_norm_rescale", "layer_norm"):
        raise ModelError(f"{cfg_path}: normalize_activations {norm!r} rescales each input by its own norm, "
                         "which no fixed linear encoder reproduces; not supported")
    if norm == "covariance_whitening":
        raise ModelError(f"{cfg_path}: normalize_activations 'covariance_whitening' is a SAELens training checkpoint's "
                         "(the whitening is folded into the weights when training ends); not supported: import "
                         "the SAE saved at the end")
    scale = None
    if norm == "expected_average_only_in":
        if scaling_factor is None:
            raise ModelError(f"{cfg_path}: {NO_SCALING_FACTOR}; fold it in with "
                             "sae.fold_activation_norm_scaling_factor(factor) and convert that")
        scale = scaling_factor()
        warnings.append(f"normalize_activations is expected_average_only_in (a SAELens training checkpoint): its "
                        f"scaling factor {scale:.9g} from {SCALER_FILE} is folded into the weights as SAELens folds "
                        "it when training ends, so the SAE takes raw activations")
    reshape = cfg.get("reshape_activations", "none")
    if reshape not in RESHAPES:
        raise ModelError(f"{cfg_path}: unknown reshape_activations {reshape!r}")
    if reshape == "hook_z":
        warnings.append("reshape_activations is hook_z: the SAE reads each position's attention output "
                        "[n_heads, d_head] flattened head by head into d_in values, as SAELens flattens it")

    tensors = tensors()
    # a JumpReLU training SAE saved with save_model keeps log(threshold) instead
    thr_name = "log_threshold" if "log_threshold" in tensors and "threshold" not in tensors else "threshold"
    check_names(tensors, WEIGHT_NAMES + ((thr_name,) if arch == "jumprelu" else ()), (), w_path)
    W_enc = weight(tensors, "W_enc", (d_in, d_sae), w_path)
    b_enc = weight(tensors, "b_enc", (d_sae,), w_path)
    W_dec = weight(tensors, "W_dec", (d_sae, d_in), w_path)
    b_dec = weight(tensors, "b_dec", (d_in,), w_path)
    if scale is not None:  # SAELens' fold_activation_norm_scaling_factor: pre-activations (and thresholds) unchanged
        W_enc, W_dec, b_dec = W_enc * scale, W_dec / scale, b_dec / scale
    threshold, k, l1 = None, None, None
    if arch == "jumprelu":
        threshold = weight(tensors, thr_name, (d_sae,), w_path, finite=False)
        if thr_name == "log_threshold":
            threshold = threshold.exp()
    elif arch == "topk":
        k = positive_int(cfg, "k", cfg_path)
        if flag(cfg, "rescale_acts_by_decoder_norm", cfg_path, False):
            W_enc, b_enc, W_dec = _fold_decoder_norms(W_enc, b_enc, W_dec)
    else:
        l1 = 0.0
    sae_cfg = SAEConfig({"standard": "relu"}.get(arch, arch), d_in, d_sae, k=k, l1_coeff=l1,
                        apply_b_dec_to_input=apply_b_dec)
    try:
        sae = build(sae_cfg, W_enc, b_enc, W_dec, b_dec, threshold)
    except ModelError as e:
        raise ModelError(f"{cfg_path}: {e}") from None
    return Imported(sae, "saelens", arch, warnings)


def _fold_decoder_norms(W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor):
    """SAELens' rescale_acts_by_decoder_norm, folded: latents pre * n and decode (z / n) @ W_dec equal
    those of W_enc * n, b_enc * n and rows W_dec / n (n = ||W_dec[i]||; a zero row stays zero)."""
    n = W_dec.norm(dim=-1)
    safe = torch.where(n > 0, n, torch.ones_like(n))
    return W_enc * n, b_enc * n, W_dec / safe[:, None]


# --- export ---------------------------------------------------------------------------------------

def export_architecture(cfg: SAEConfig) -> str:
    """The SAELens architecture an mdlcodec SAE of cfg is exported as (see saelens_files); ModelError if none."""
    if cfg.arch == "topk" or (cfg.arch == "batchtopk" and cfg.threshold is None):
        return "topk"
    if cfg.arch in ("batchtopk", "jumprelu"):
        return "jumprelu"
    if cfg.arch == "relu":
        return "standard"
    raise ModelError(f"SAELens has no counterpart of mdlcodec's {cfg.arch} architecture "
                     "(exportable: topk, batchtopk, relu, jumprelu)")


def saelens_files(sae: SAE, provenance: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The cfg.json object and the tensors of sae in SAELens 6's format, input_scale folded in.

    topk -> topk; batchtopk -> jumprelu with its threshold copied to every latent (as SAELens saves
    its own BatchTopK SAEs), or topk before a threshold exists (mdlcodec then encodes per-sample top-k);
    relu -> standard; jumprelu -> jumprelu. Other architectures (tree) have no SAELens counterpart."""
    c = sae.cfg
    arch = export_architecture(c)
    extra: dict[str, Any] = {"k": c.k, "rescale_acts_by_decoder_norm": False} if arch == "topk" else {}
    threshold = None
    if c.arch == "batchtopk" and arch == "jumprelu":
        threshold = torch.full((c.d_sae,), float(c.threshold))
    elif c.arch == "jumprelu":
        threshold = sae.threshold.detach().cpu().float()
    s = torch.tensor(c.input_scale, dtype=torch.float32)
    w = {n: getattr(sae, n).detach().to("cpu", torch.float32) for n in WEIGHT_NAMES}
    if c.input_scale != 1.0:  # the SAE sees x * s: on raw x its pre-activations / s, decoder rows unchanged
        w["b_enc"], w["b_dec"] = w["b_enc"] / s, w["b_dec"] / s
        threshold = threshold / s if threshold is not None else None
    if threshold is not None:
        w["threshold"] = threshold
    tensors = {n: t.contiguous() for n, t in w.items()}
    metadata = {"sae_lens_version": FORMAT_VERSION, "sae_lens_training_version": None,
                "training_architecture": c.arch, "exported_by": f"mdlcodec {__version__}",
                "model_name": (provenance or {}).get("model_name"), "hook_name": (provenance or {}).get("hook_name"),
                "mdlcodec_input_scale": float(c.input_scale)}
    cfg = {"d_in": c.d_in, "d_sae": c.d_sae, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": c.apply_b_dec_to_input, "normalize_activations": "none",
           "reshape_activations": "none", "metadata": metadata, **extra, "architecture": arch}
    return cfg, tensors


def export_saelens(sae: SAE, out_dir: str | Path, overwrite: bool = False,
                   provenance: dict[str, Any] | None = None) -> Path:
    """Write sae to out_dir as SAELens 6 saves an SAE (cfg.json, sae_weights.safetensors). A new folder
    appears whole; a folder that already holds either file is replaced only with overwrite (each file
    atomically, other files left alone). ModelError before anything is written if sae has no SAELens form."""
    cfg, tensors = saelens_files(sae, provenance)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out} exists and is not a directory")
    if out.is_dir() and not overwrite and any((out / n).exists() for n in (CFG_FILE, WEIGHTS_FILE)):
        raise ModelError(f"{out} already holds a SAELens SAE", param="overwrite")
    return write_folder(out, ((WEIGHTS_FILE, lambda p: Path(p).write_bytes(safetensors.torch.save(tensors))),
                              (CFG_FILE, lambda p: Path(p).write_text(json.dumps(cfg) + "\n"))))
