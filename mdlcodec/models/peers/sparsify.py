"""EleutherAI sparsify: one folder per hook point with cfg.json (num_latents, k, activation, d_in,
...) and sae.safetensors (encoder.weight [d_sae, d_in], encoder.bias, W_dec [d_sae, d_in], b_dec).

SparseCoder.encode is relu(encoder(x - b_dec)) followed by the top k of each row (activation
"topk"), and decode adds the selected rows of W_dec to b_dec: mdlcodec topk with W_enc =
encoder.weight.T (nn.Linear stores [out, in]). num_latents 0 means d_in * expansion_factor, as in
sparsify. Refused: activation "groupmax" (one latent per group, not top-k), transcoders (transcode:
they predict another site's activations, so decode is not a reconstruction of x) and skip
connections (W_skip: the reconstruction depends on x itself, not only on the latents).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import Tensor

from mdlcodec.core.errors import ModelError
from mdlcodec.models.base import SAEConfig
from mdlcodec.models.formats import read_json_object
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
WEIGHTS_FILE = "sae.safetensors"
DEFAULT_K = 32                 # SparseCoderConfig's defaults, for files that leave these out
DEFAULT_EXPANSION_FACTOR = 32


def import_sparsify(folder: str | Path) -> Imported:
    """The sparse coder sparsify saved in folder (SparseCoder.save_to_disk) as an mdlcodec topk SAE."""
    d = Path(folder)
    cfg_path, w_path = d / CFG_FILE, d / WEIGHTS_FILE
    return convert_sparsify(read_json_object(cfg_path), lambda: read_safetensors(w_path), cfg_path, w_path)


def convert_sparsify(cfg: dict[str, Any], tensors: Callable[[], dict[str, Tensor]], cfg_path: str | Path,
                     w_path: str | Path) -> Imported:
    """sparsify's cfg.json fields and (read when the config passes) its tensors as an mdlcodec topk
    SAE; cfg_path and w_path name them in errors (files, or an object in memory)."""
    activation = cfg.get("activation", "topk")
    if activation != "topk":
        raise ModelError(f"{cfg_path}: activation {activation!r} is not supported (only topk)")
    if flag(cfg, "transcode", cfg_path, False):
        raise ModelError(f"{cfg_path}: a transcoder predicts another site's activations; only autoencoders "
                         "(transcode false) can be imported")
    if flag(cfg, "skip_connection", cfg_path, False):
        raise ModelError(f"{cfg_path}: skip connections (W_skip) make the reconstruction depend on the input "
                         "itself; not supported")
    d_in = positive_int(cfg, "d_in", cfg_path)
    num_latents = cfg.get("num_latents", 0)
    if num_latents == 0:
        d_sae = d_in * positive_int(cfg, "expansion_factor", cfg_path, DEFAULT_EXPANSION_FACTOR)
    else:
        d_sae = positive_int(cfg, "num_latents", cfg_path)
    k = positive_int(cfg, "k", cfg_path, DEFAULT_K)

    tensors = tensors()
    check_names(tensors, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"), (), w_path)
    W_enc = weight(tensors, "encoder.weight", (d_sae, d_in), w_path).T.contiguous()
    b_enc = weight(tensors, "encoder.bias", (d_sae,), w_path)
    W_dec = weight(tensors, "W_dec", (d_sae, d_in), w_path)
    b_dec = weight(tensors, "b_dec", (d_in,), w_path)
    try:
        sae = build(SAEConfig("topk", d_in, d_sae, k=k), W_enc, b_enc, W_dec, b_dec)
    except ModelError as e:
        raise ModelError(f"{cfg_path}: {e}") from None
    return Imported(sae, "sparsify", "SparseCoder", [])
