"""Peers' SAEs in and out: SAEs saved by SAELens, dictionary_learning and EleutherAI's sparsify,
recognised from their files alone and converted once into mdlcodec SAEs (then saved with
models.save_sae, so that fit-codec, encode and everything else work on them unchanged); and
mdlcodec SAEs written in SAELens' format.

    fmt = detect(path)                 # "saelens", "dictionary_learning" or "sparsify"
    sae = import_sae(path)             # an mdlcodec SAE computing what the peer's own encode/decode do
    imp = import_peer(path)            # the same, with the peer's class name and warnings
    export_saelens(sae, out_dir)       # SAELens 6's cfg.json + sae_weights.safetensors
    sae = as_sae(obj)                  # an SAE object in memory (SAELens, SAEBench, sparsify,
                                       # dictionary_learning, a dict of tensors): objects.py

Each peer's conventions and their conversion are in its module's docstring. Bad input (no known
format, missing files, keys or fields, wrong shapes, NaN, tensors that are not floating point, an
ae.pt holding anything but tensors, an unknown class or architecture) is one ModelError line.
"""

from __future__ import annotations

from pathlib import Path

from mdlcodec.models.base import SAE
from mdlcodec.models.formats import detect
from mdlcodec.models.peers.common import Imported, refuse_without_threshold
from mdlcodec.models.peers.dictionary_learning import import_dictionary_learning
from mdlcodec.models.peers.objects import as_sae, convert_object
from mdlcodec.models.peers.saelens import export_saelens, import_saelens
from mdlcodec.models.peers.sparsify import import_sparsify

FORMATS = ("saelens", "dictionary_learning", "sparsify")
EXPORT_FORMATS = ("saelens",)

__all__ = ["EXPORT_FORMATS", "FORMATS", "Imported", "as_sae", "convert_object", "detect", "export_saelens", "import_peer", "import_sae"]


def import_peer(path: str | Path, use_threshold: bool = True) -> Imported:
    """The SAE in folder path (its format detected) as an mdlcodec SAE, with what the conversion
    found. use_threshold: for dictionary_learning's AutoEncoderTopK, False imports its top-k encode
    rather than its thresholded one (see mdlcodec.models.peers.dictionary_learning)."""
    fmt = detect(path)
    if fmt == "dictionary_learning":
        return import_dictionary_learning(path, use_threshold)
    refuse_without_threshold(use_threshold, fmt)
    return import_saelens(path) if fmt == "saelens" else import_sparsify(path)


def import_sae(path: str | Path, use_threshold: bool = True) -> SAE:
    """import_peer(path).sae: the peer's SAE as an mdlcodec SAE (eval mode, CPU, input_scale 1)."""
    return import_peer(path, use_threshold).sae
