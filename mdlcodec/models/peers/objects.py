"""SAE objects in memory (a notebook's), recognised by their attributes alone (no peer library is
imported) and converted by the same code as the folder importers:

- an mdlcodec SAE: itself;
- SAELens (v6) ``SAE``: ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec`` (``threshold``) and a ``cfg`` whose
  ``architecture`` is a method -> the fields of its cfg.json (``cfg.to_dict()``), as import_saelens;
- SAEBench's custom SAEs (``sae_bench.custom_saes``): the same tensors, ``cfg.architecture`` a string
  (standard, standard_april_update, p_anneal: relu; topk with a ``k`` buffer, top-k of relu(pre) or,
  with ``use_threshold``, its one threshold; batch_topk and matryoshka_batch_topk: their one
  threshold; jumprelu: per-latent thresholds on x @ W_enc + b_enc, no b_dec subtracted);
- sparsify ``SparseCoder``: ``encoder`` (an nn.Linear), ``W_dec``, ``b_dec`` and a ``cfg`` with ``k``;
- a dictionary_learning dictionary: its class name (AutoEncoder, AutoEncoderTopK, BatchTopKSAE,
  MatryoshkaBatchTopKSAE, JumpReluAutoEncoder), ``activation_dim``, ``dict_size`` and state dict;
- a plain dict of tensors in SAELens' layout (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in],
  b_dec), with ``threshold`` [d_sae] for a JumpReLU SAE or ``k`` for a TopK one, else ReLU.

Tensors may be on any device and in any floating dtype (bfloat16 included): they are read as float32
on the CPU; the object itself is left as it was. Anything else is one ModelError line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAE
from mdlcodec.models.peers.common import Imported, refuse_without_threshold
from mdlcodec.models.peers.dictionary_learning import CLASSES as DL_CLASSES
from mdlcodec.models.peers.dictionary_learning import convert_dictionary_learning
from mdlcodec.models.peers.saelens import convert_saelens
from mdlcodec.models.peers.sparsify import convert_sparsify

SAEBENCH_RELU = ("standard", "standard_april_update", "p_anneal", "relu")
SAEBENCH_THRESHOLD = ("batch_topk", "matryoshka_batch_topk")
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


def as_sae(obj: Any, use_threshold: bool = True) -> SAE:
    """``obj`` (any SAE object this module's docstring lists) as an mdlcodec SAE."""
    return convert_object(obj, use_threshold).sae


def convert_object(obj: Any, use_threshold: bool = True) -> Imported:
    """``obj`` as an mdlcodec SAE with what the conversion found (format "mdlcodec", "saelens",
    "saebench", "sparsify", "dictionary_learning" or "dict"). use_threshold False: only for
    dictionary_learning's AutoEncoderTopK (as import_peer)."""
    if isinstance(obj, SAE):
        return Imported(obj, "mdlcodec", type(obj).__name__, [])
    name = type(obj).__name__
    where = f"the {name} object"
    cfg = getattr(obj, "cfg", None)
    if name in DL_CLASSES and hasattr(obj, "activation_dim") and hasattr(obj, "dict_size"):
        config = {"trainer": {"dict_class": name, "activation_dim": obj.activation_dim, "dict_size": obj.dict_size}}
        return convert_dictionary_learning(config, lambda: _state(obj), where, where, use_threshold)
    if isinstance(obj, dict):
        refuse_without_threshold(use_threshold, "dict")
        return _from_dict(obj)
    if isinstance(getattr(obj, "encoder", None), torch.nn.Linear) and hasattr(obj, "W_dec") and hasattr(cfg, "k"):
        refuse_without_threshold(use_threshold, "sparsify")
        fields = _fields(cfg)
        fields.setdefault("d_in", getattr(obj, "d_in", None))
        fields["num_latents"] = getattr(obj, "num_latents", fields.get("num_latents", 0))
        return convert_sparsify(fields, lambda: _state(obj), where, where)
    if all(hasattr(obj, t) for t in TENSORS) and cfg is not None:
        arch = getattr(cfg, "architecture", None)
        if callable(arch):  # SAELens: SAEConfig.architecture() names the class
            refuse_without_threshold(use_threshold, "saelens")
            fields = _fields(cfg)
            fields["architecture"] = arch()
            return convert_saelens(fields, lambda: _state(obj), where, where)
        if isinstance(arch, str):
            refuse_without_threshold(use_threshold, "saebench")
            return _from_saebench(obj, arch, where)
    raise ModelError(f"{where} is not an SAE this version knows: an mdlcodec SAE, a SAELens SAE, a SAEBench "
                     "custom SAE, a sparsify SparseCoder, a dictionary_learning dictionary, or a dict of tensors "
                     f"{', '.join(TENSORS)} (optionally threshold or k)")


def _state(obj: Any) -> dict[str, torch.Tensor]:
    """The object's tensors (its state dict: parameters and buffers), as they are."""
    state = obj.state_dict() if hasattr(obj, "state_dict") else {}
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _fields(cfg: Any) -> dict[str, Any]:
    """A config object's fields as a dict (its to_dict(), a dataclass's fields, or its attributes)."""
    if hasattr(cfg, "to_dict"):
        raw = cfg.to_dict()
    elif dataclasses.is_dataclass(cfg):
        raw = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    else:
        raw = dict(vars(cfg))
    return {k: v for k, v in raw.items() if isinstance(k, str)}


def _tensor(obj: Any, name: str) -> Any:
    t = obj[name] if isinstance(obj, dict) else getattr(obj, name)
    return t.detach() if isinstance(t, torch.Tensor) else t


def _shape(obj: Any, where: str) -> tuple[int, int]:
    W_enc = _tensor(obj, "W_enc")
    if not isinstance(W_enc, torch.Tensor) or W_enc.ndim != 2:
        raise ModelError(f"{where}: W_enc should be a tensor [d_in, d_sae], is {type(W_enc).__name__} "
                         f"{list(getattr(W_enc, 'shape', []))}")
    return int(W_enc.shape[0]), int(W_enc.shape[1])


def _k(value: Any, where: str) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelError(f"{where}: k is {value!r}, expected a positive integer")
    return value


def _saelens_layout(obj: Any, where: str, fmt: str, peer_class: str, threshold: Any = None, **fields) -> Imported:
    """An object holding SAELens-layout tensors (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec,
    and ``threshold`` [d_sae] when given) with cfg.json ``fields``, through import_saelens' conversion."""
    d_in, d_sae = _shape(obj, where)
    tensors = {t: _tensor(obj, t) for t in TENSORS}
    if threshold is not None:
        tensors["threshold"] = threshold
    cfg = {"d_in": d_in, "d_sae": d_sae, "metadata": {"sae_lens_version": "6"}, **fields}
    return Imported(convert_saelens(cfg, lambda: tensors, where, where).sae, fmt, peer_class, [])


def _from_dict(obj: dict) -> Imported:
    where = "the dict of tensors"
    missing = [t for t in TENSORS if t not in obj]
    if missing:
        raise ModelError(f"{where} lacks {', '.join(missing)} (SAELens' layout: W_enc [d_in, d_sae], b_enc, "
                         "W_dec [d_sae, d_in], b_dec; threshold [d_sae] or k optional)")
    unknown = sorted(map(str, set(obj) - set(TENSORS) - {"threshold", "k"}))
    if unknown:
        raise ModelError(f"{where} holds entries this conversion does not know: {', '.join(unknown)}")
    if "threshold" in obj and "k" in obj:
        raise ModelError(f"{where} holds both threshold and k; give one (JumpReLU or TopK)")
    if "threshold" in obj:
        return _saelens_layout(obj, where, "dict", "jumprelu", _tensor(obj, "threshold"), architecture="jumprelu")
    if "k" in obj:
        return _saelens_layout(obj, where, "dict", "topk", architecture="topk", k=_k(_tensor(obj, "k"), where))
    return _saelens_layout(obj, where, "dict", "standard", architecture="standard")


def _from_saebench(obj: Any, arch: str, where: str) -> Imported:
    """SAEBench's custom SAEs, through the SAELens conversion (their tensors share its layout)."""
    threshold = _tensor(obj, "threshold") if hasattr(obj, "threshold") else None
    if arch in SAEBENCH_RELU:
        return _saelens_layout(obj, where, "saebench", arch, architecture="standard")
    if arch in SAEBENCH_THRESHOLD or (arch == "topk" and bool(getattr(obj, "use_threshold", False))):
        # relu(pre) * (relu(pre) > t), one t: JumpReLU with t for every latent
        if not isinstance(threshold, torch.Tensor) or threshold.numel() != 1:
            raise ModelError(f"{where}: a {arch} SAE keeps one threshold; it has none")
        if float(threshold) < 0:
            raise ModelError(f"{where}: its threshold was never set ({float(threshold):g}); SAEBench's own "
                             "encode refuses it too")
        every = threshold.reshape(1).expand(_shape(obj, where)[1]).clone()
        return _saelens_layout(obj, where, "saebench", arch, every, architecture="jumprelu")
    if arch == "topk":
        return _saelens_layout(obj, where, "saebench", arch, architecture="topk", k=_k(_tensor(obj, "k"), where))
    if arch == "jumprelu":
        return _saelens_layout(obj, where, "saebench", arch, threshold, architecture="jumprelu",
                               apply_b_dec_to_input=False)
    raise ModelError(f"{where}: SAEBench architecture {arch!r} is not supported (supported: "
                     f"{', '.join(SAEBENCH_RELU + SAEBENCH_THRESHOLD + ('topk', 'jumprelu'))})")
