"""Small SAEs written in the peers' file formats (the files only; no peer library is installed), and
the peers' encode/decode written out from their source (SAELens 6, dictionary_learning 0.1.0,
sparsify 1.3), for the importer tests (tests/models/test_peers.py, tests/cli/test_peers_cmd.py)."""

from __future__ import annotations

import json
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F

D_IN, D_SAE, K = 6, 10, 3
DL_CLASSES = ("AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE", "JumpReluAutoEncoder")


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """SAELens-layout weights with non-unit decoder rows and biases that matter."""
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(D_SAE, D_IN, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * (0.5 + torch.rand(D_SAE, 1, generator=g))
    return {"W_enc": 0.7 * torch.randn(D_IN, D_SAE, generator=g), "b_enc": 0.2 * torch.randn(D_SAE, generator=g),
            "W_dec": W_dec, "b_dec": 0.3 * torch.randn(D_IN, generator=g)}


def thresholds(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 100)
    return 0.1 + 0.4 * torch.rand(D_SAE, generator=g)


def inputs(n: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D_IN, generator=torch.Generator().manual_seed(seed))


def _save(tensors: dict, path: Path) -> None:
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def write_saelens(d: Path, arch: str = "standard", cfg: dict | None = None, tensors: dict | None = None,
                  drop: tuple[str, ...] = ()) -> Path:
    """A folder as SAELens 6's save_model writes it (fields as in ../shared/peers/saelens-*/cfg.json)."""
    d.mkdir(parents=True, exist_ok=True)
    w = weights()
    if arch == "jumprelu":
        w["threshold"] = thresholds()
    c = {"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
         "normalize_activations": "none", "reshape_activations": "none",
         "metadata": {"sae_lens_version": "6.54.12", "sae_lens_training_version": "6.54.12"}}
    if arch == "topk":
        c.update({"k": K, "rescale_acts_by_decoder_norm": False})
    c["architecture"] = arch
    c.update(cfg or {})
    w.update(tensors or {})
    for name in drop:
        w.pop(name)
    _save(w, d / "sae_weights.safetensors")
    (d / "cfg.json").write_text(json.dumps(c))
    return d


def write_saelens_checkpoint(d: Path, arch: str = "standard", scaling_factor: float | None = 0.13,
                             cfg: dict | None = None) -> Path:
    """A folder as SAELens 6.54's SAETrainer.save_checkpoint writes it during training with
    normalize_activations "expected_average_only_in" (before the factor is folded in): save_model's
    cfg.json and sae_weights.safetensors, and ActivationScaler.save's activation_scaler.json (omitted
    with scaling_factor None); the trainer's sparsity.safetensors and trainer_state.pt are not read."""
    c = {"normalize_activations": "expected_average_only_in",
         "metadata": {"sae_lens_version": "6.54.12", "sae_lens_training_version": "6.54.12",
                      "training_architecture": arch}}
    if arch == "topk":
        c["rescale_acts_by_decoder_norm"] = True  # TopKTrainingSAEConfig's default
    c.update(cfg or {})
    write_saelens(d, arch, cfg=c)
    if scaling_factor is not None:
        (d / "activation_scaler.json").write_text(json.dumps({"scaling_factor": scaling_factor, "has_whitening": False}))
    return d


def saelens_fold_scaling_factor(w: dict, s: float) -> dict:
    """SAELens' SAE.fold_activation_norm_scaling_factor(s) (saes/sae.py) on its tensors."""
    return {**w, "W_enc": w["W_enc"] * s, "W_dec": w["W_dec"] / s, "b_dec": w["b_dec"] / s}


def write_dictionary_learning(d: Path, cls: str, threshold: float = 0.3, trainer: dict | None = None,
                              state: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A folder as dictionary_learning's trainSAE leaves it: ae.pt (torch.save of the state dict) and config.json."""
    d.mkdir(parents=True, exist_ok=True)
    w = weights()
    if cls in ("AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE"):  # nn.Linear stores [out, in]
        s = {"encoder.weight": w["W_enc"].T.contiguous(), "encoder.bias": w["b_enc"],
             "decoder.weight": w["W_dec"].T.contiguous(), ("bias" if cls == "AutoEncoder" else "b_dec"): w["b_dec"]}
    else:
        s = dict(w)
    if cls in ("AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
        s["k"], s["threshold"] = torch.tensor(K, dtype=torch.int32), torch.tensor(threshold)
    if cls == "MatryoshkaBatchTopKSAE":
        s["group_sizes"] = torch.tensor([4, 6])
    if cls == "JumpReluAutoEncoder":
        s["threshold"] = thresholds()
    s.update(state or {})
    for name in drop:
        s.pop(name)
    torch.save(s, d / "ae.pt")
    t = {"trainer_class": "Trainer", "dict_class": cls, "activation_dim": D_IN, "dict_size": D_SAE, "k": K,
         "layer": 0, "lm_name": "test"}
    t.update(trainer or {})
    (d / "config.json").write_text(json.dumps({"trainer": t}, indent=4))
    return d


def write_sparsify(d: Path, cfg: dict | None = None, tensors: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A folder as sparsify's SparseCoder.save_to_disk writes it."""
    d.mkdir(parents=True, exist_ok=True)
    w = weights()
    t = {"encoder.weight": w["W_enc"].T.contiguous(), "encoder.bias": w["b_enc"], "W_dec": w["W_dec"],
         "b_dec": w["b_dec"]}
    t.update(tensors or {})
    for name in drop:
        t.pop(name)
    _save(t, d / "sae.safetensors")
    c = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True, "num_latents": D_SAE, "k": K,
         "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D_IN}
    c.update(cfg or {})
    (d / "cfg.json").write_text(json.dumps(c))
    return d


# --- the peers' own encode and decode, written out from their source -------------------------------

def _scatter_topk(values: torch.Tensor, k: int) -> torch.Tensor:
    top = values.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(values).scatter(-1, top.indices, top.values)


def saelens_reference(w: dict, cfg: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SAELens 6's encode and decode (StandardSAE, TopKSAE, JumpReLUSAE): (latents, recon)."""
    sae_in = x - w["b_dec"] * cfg.get("apply_b_dec_to_input", True)
    pre = sae_in @ w["W_enc"] + w["b_enc"]
    arch, norms = cfg["architecture"], w["W_dec"].norm(dim=-1)
    rescale = arch == "topk" and cfg.get("rescale_acts_by_decoder_norm", False)
    if arch == "standard":
        z = pre.relu()
    elif arch == "topk":
        if rescale:
            pre = pre * norms
        top = torch.topk(pre, k=cfg["k"], dim=-1, sorted=False)
        z = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    else:
        z = pre.relu() * (pre > w["threshold"]).to(pre.dtype)
    return z, (z / norms if rescale else z) @ w["W_dec"] + w["b_dec"]


def dictionary_learning_reference(s: dict, cls: str, x: torch.Tensor, use_threshold: bool = True):
    """dictionary_learning's encode (use_threshold=True where the class has it) and decode."""
    if cls == "AutoEncoder":
        f = F.relu(F.linear(x - s["bias"], s["encoder.weight"], s["encoder.bias"]))
        return f, F.linear(f, s["decoder.weight"]) + s["bias"]
    if cls == "JumpReluAutoEncoder":  # apply_b_dec_to_input is False
        pre = x @ s["W_enc"] + s["b_enc"]
        f = F.relu(pre * (pre > s["threshold"]))
        return f, f @ s["W_dec"] + s["b_dec"]
    if cls == "MatryoshkaBatchTopKSAE":
        post = F.relu((x - s["b_dec"]) @ s["W_enc"] + s["b_enc"])
    else:
        post = F.relu(F.linear(x - s["b_dec"], s["encoder.weight"], s["encoder.bias"]))
    f = post * (post > s["threshold"]) if use_threshold else _scatter_topk(post, int(s["k"]))
    if cls == "MatryoshkaBatchTopKSAE":
        return f, f @ s["W_dec"] + s["b_dec"]
    return f, F.linear(f, s["decoder.weight"]) + s["b_dec"]


def sparsify_reference(t: dict, k: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseCoder.encode (relu(encoder(x - b_dec)) then top-k) scattered dense, and decode."""
    z = _scatter_topk(F.relu(F.linear(x - t["b_dec"], t["encoder.weight"], t["encoder.bias"])), k)
    return z, z @ t["W_dec"] + t["b_dec"]
