"""dictionary_learning (saprmarks): a folder with ae.pt (a torch state dict) and config.json, whose
trainer.dict_class names the class.

ae.pt is untrusted input: it is read only with torch.load(..., weights_only=True) and must hold
nothing but tensors. The classes and how each becomes an mdlcodec SAE:

- AutoEncoder: relu(encoder(x - bias)), decoder(f) + bias, with nn.Linear's [out, in] weights:
  W_enc = encoder.weight.T, W_dec = decoder.weight.T, b_dec = bias -> mdlcodec relu (l1_coeff 0: the
  file keeps no penalty in mdlcodec's units);
- AutoEncoderTopK, BatchTopKSAE (nn.Linear layout, b_dec) and MatryoshkaBatchTopKSAE (W_enc [d_in,
  d_sae], W_dec [d_sae, d_in] as mdlcodec's): their inference encode, encode(x, use_threshold=True),
  keeps relu(pre) where relu(pre) > threshold, one scalar threshold on the activations for every
  latent -> mdlcodec jumprelu with that threshold copied to every latent (the same test: a negative
  threshold keeps every positive pre-activation). dictionary_learning stores -1 until training has
  estimated the threshold; the import then says so. With use_threshold=False, AutoEncoderTopK is
  imported as its default encode, top-k of relu(pre) -> mdlcodec topk; the BatchTopK classes' default
  encode ranks a whole batch together and has no per-sample form. A loaded Matryoshka SAE has every
  group active, so its group sizes change nothing;
- JumpReluAutoEncoder: relu(pre * (pre > threshold)) with pre = x @ W_enc + b_enc (no b_dec
  subtracted: apply_b_dec_to_input false) -> mdlcodec jumprelu.

Trained with normalize_activations, dictionary_learning saves the biases (and threshold) already
rescaled to raw inputs, so no scaling is applied here. GatedAutoEncoder and other classes are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.core.paths import regular_file
from mdlcodec.data.files import load_torch_file
from mdlcodec.models.base import SAEConfig
from mdlcodec.models.formats import read_json_object
from mdlcodec.models.peers.common import (
    Imported,
    build,
    check_names,
    positive_int,
    scalar,
    weight,
)

CONFIG_FILE = "config.json"
STATE_FILE = "ae.pt"
LINEAR = ("encoder.weight", "encoder.bias", "decoder.weight")  # nn.Linear layout
# dict_class -> the state dict's tensors
CLASSES = {
    "AutoEncoder": (*LINEAR, "bias"),
    "AutoEncoderTopK": (*LINEAR, "b_dec", "k", "threshold"),
    "BatchTopKSAE": (*LINEAR, "b_dec", "k", "threshold"),
    "MatryoshkaBatchTopKSAE": ("W_enc", "b_enc", "W_dec", "b_dec", "k", "threshold", "group_sizes"),
    "JumpReluAutoEncoder": ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"),
}
THRESHOLDED = ("AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE")  # encode(use_threshold=...)


def load_state_dict(path: Path) -> dict[str, Tensor]:
    """ae.pt's tensors, read with torch.load(weights_only=True); ModelError (one line) if the file is
    missing or not a regular file, is not a torch file, or holds anything but a dict of tensors."""
    regular_file(path, error=ModelError)
    try:
        obj = load_torch_file(path)  # torch's warnings silenced: the error is the only line
    except ValueError as e:
        raise ModelError(f"cannot read {path} as a state dict of tensors ({e})") from None
    if not isinstance(obj, dict):
        raise ModelError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ModelError(f"{path} holds entries that are not tensors ({', '.join(bad[:5])}), not a state dict")
    return obj


def import_dictionary_learning(folder: str | Path, use_threshold: bool = True) -> Imported:
    """The SAE dictionary_learning saved in folder (trainSAE's ae.pt and config.json) as an mdlcodec
    SAE. use_threshold: import the thresholded encode (its inference mode) of AutoEncoderTopK,
    BatchTopKSAE and MatryoshkaBatchTopKSAE; False imports AutoEncoderTopK's top-k encode instead."""
    d = Path(folder)
    cfg_path, state_path = d / CONFIG_FILE, d / STATE_FILE
    return convert_dictionary_learning(read_json_object(cfg_path), lambda: load_state_dict(state_path), cfg_path,
                                       state_path, use_threshold)


def convert_dictionary_learning(config: dict[str, Any], tensors: Callable[[], dict[str, Tensor]],
                                cfg_path: str | Path, state_path: str | Path, use_threshold: bool = True) -> Imported:
    """dictionary_learning's config.json fields (trainer.dict_class, activation_dim, dict_size) and
    (read when the config passes) its state dict as an mdlcodec SAE; cfg_path and state_path name
    them in errors (files, or an object in memory)."""
    trainer = config.get("trainer")
    if not isinstance(trainer, dict):
        raise ModelError(f"{cfg_path} has no 'trainer' object")
    cls = trainer.get("dict_class")
    if cls is None:
        raise ModelError(f"{cfg_path} lacks the field trainer.dict_class")
    if not isinstance(cls, str) or cls not in CLASSES:
        raise ModelError(f"{cfg_path}: dict_class {cls!r} is not supported (supported: {', '.join(CLASSES)})")
    if not use_threshold and cls != "AutoEncoderTopK":
        why = ("ranks a whole batch together (batch top-k), which has no per-sample form"
               if cls in THRESHOLDED else "has no thresholded encode to turn off")
        raise ModelError(f"{cls} without its threshold {why}; import it with its threshold")
    d_in, d_sae = positive_int(trainer, "activation_dim", cfg_path), positive_int(trainer, "dict_size", cfg_path)
    k_cfg = trainer.get("k")  # the top-k classes' trainers record it: at most the dictionary, as the state's buffer
    if k_cfg is not None and cls not in ("AutoEncoder", "JumpReluAutoEncoder") and \
            (type(k_cfg) is not int or not 1 <= k_cfg <= d_sae):
        raise ModelError(f"{cfg_path}: trainer.k is {k_cfg!r}, not an integer in [1, dict_size = {d_sae}]")
    state = tensors()
    check_names(state, CLASSES[cls], (), state_path)

    if cls in ("AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE"):
        W_enc = weight(state, "encoder.weight", (d_sae, d_in), state_path).T.contiguous()
        b_enc = weight(state, "encoder.bias", (d_sae,), state_path)
        W_dec = weight(state, "decoder.weight", (d_in, d_sae), state_path).T.contiguous()
        b_dec = weight(state, "bias" if cls == "AutoEncoder" else "b_dec", (d_in,), state_path)
    else:
        W_enc = weight(state, "W_enc", (d_in, d_sae), state_path)
        b_enc = weight(state, "b_enc", (d_sae,), state_path)
        W_dec = weight(state, "W_dec", (d_sae, d_in), state_path)
        b_dec = weight(state, "b_dec", (d_in,), state_path)

    warnings: list[str] = []
    kw: dict = {}
    threshold = None
    if cls == "AutoEncoder":
        arch, kw = "relu", {"l1_coeff": 0.0}
    elif cls == "JumpReluAutoEncoder":
        arch, kw = "jumprelu", {"apply_b_dec_to_input": False}
        threshold = weight(state, "threshold", (d_sae,), state_path, finite=False)
    else:
        k = _int_scalar(state, "k", state_path)
        if k > d_sae or (k_cfg is not None and k_cfg != k):
            raise ModelError(f"{state_path}: k is {k}, " + (f"more than dict_size = {d_sae}" if k > d_sae else
                                                             f"and {cfg_path} says trainer.k = {k_cfg}"))
        if cls == "MatryoshkaBatchTopKSAE":
            groups = state["group_sizes"]
            if (groups.is_floating_point() or groups.ndim != 1 or int(groups.sum()) != d_sae
                    or bool((groups <= 0).any())):
                raise ModelError(f"{state_path}: group_sizes {groups.tolist()} are not positive sizes summing to "
                                 f"dict_size {d_sae}")
        if use_threshold:
            t = scalar(state, "threshold", state_path)
            if not t.is_floating_point() or bool(t.isnan()):
                raise ModelError(f"{state_path}: threshold is {t.tolist()!r} ({t.dtype}), not a number")
            t = t.to(torch.float32)
            arch, threshold = "jumprelu", t.expand(d_sae).clone()
            if float(t) < 0:
                warnings.append(f"{cls}'s threshold was never estimated ({float(t):g}): its encode(use_threshold=True) "
                                "keeps every positive latent, with no top-k"
                                + (" (import it without its threshold, use_threshold=False, for its top-k encode)"
                                   if cls == "AutoEncoderTopK" else ""))
        else:
            arch, kw = "topk", {"k": k}
    try:
        sae = build(SAEConfig(arch, d_in, d_sae, **kw), W_enc, b_enc, W_dec, b_dec, threshold)
    except ModelError as e:
        raise ModelError(f"{state_path}: {e}") from None
    return Imported(sae, "dictionary_learning", cls, warnings)


def _int_scalar(state: dict[str, Tensor], name: str, where: Path) -> int:
    t = scalar(state, name, where)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool or int(t) <= 0:
        raise ModelError(f"{where}: {name} is {t.tolist()!r} ({t.dtype}), expected a positive integer")
    return int(t)
