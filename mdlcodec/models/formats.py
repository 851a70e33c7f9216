"""Which library saved an SAE folder, from its file names alone (and, for a cfg.json alone, its
fields): mdlcodec's own names (``CFG_FILE``, ``WEIGHTS_FILE``; before issue 20 SAELens' names) and
the peers' (``detect``). Both sides read it: ``models.io`` to refuse a peer's folder with the
command that converts it, ``models.peers`` to pick the importer; it imports neither."""

from __future__ import annotations

from pathlib import Path

from mdlcodec.core import jsonio
from mdlcodec.core.errors import ModelError

CFG_FILE = "mdlcodec_sae.json"
WEIGHTS_FILE = "mdlcodec_sae.safetensors"
OLD_CFG_FILE = "cfg.json"  # the names before issue 20 (SAELens'): read, never written
OLD_WEIGHTS_FILE = "sae_weights.safetensors"


def read_json_object(path: Path) -> dict:
    """The JSON object in ``path`` (a model's mdlcodec_sae.json, a peer's config), read by core.jsonio; ModelError
    (one line) if the file is missing, not a regular file, unreadable, not acceptable JSON (too large,
    nested too deep, NaN, a key twice, ...), or holds anything but an object."""
    return jsonio.read_json_object(path, error=ModelError)


def detect(path: str | Path) -> str:
    """Which peer saved the SAE in folder path, from its file names (and, for a cfg.json alone, its
    fields): dictionary_learning (ae.pt, config.json), sparsify (cfg.json + sae.safetensors) or
    saelens (cfg.json + sae_weights.safetensors). ModelError if none, or if it is an mdlcodec model
    (mdlcodec_sae.json or mdlcodec_sae.safetensors; before issue 20, a cfg.json with input_scale and
    no SAELens metadata)."""
    d = Path(path)
    if not d.exists():
        raise ModelError(f"{d} does not exist")
    if not d.is_dir():
        raise ModelError(f"{d} is not a folder (a peer's SAE is a folder of files)")
    has = {p.name for p in d.iterdir() if not p.is_dir()}  # a FIFO named cfg.json is refused by its reader
    if CFG_FILE in has or WEIGHTS_FILE in has:
        name = CFG_FILE if CFG_FILE in has else WEIGHTS_FILE
        raise ModelError(f"{d} is an mdlcodec model already ({name}); use it as it is")
    if "ae.pt" in has or "config.json" in has:
        return "dictionary_learning"
    if "sae.safetensors" in has:
        return "sparsify"
    if "cfg.json" in has:
        fields = _json_fields(d / "cfg.json")
        if "input_scale" in fields and "metadata" not in fields:
            raise ModelError(f"{d} is an mdlcodec model already (an earlier version's cfg.json, with input_scale); "
                             "use it as it is")
        if fields & {"num_latents", "expansion_factor", "transcode"} and "sae_weights.safetensors" not in has:
            return "sparsify"
        return "saelens"
    if "sae_weights.safetensors" in has:
        return "saelens"
    raise ModelError(f"{d} holds no SAE in a known format: SAELens (cfg.json + sae_weights.safetensors), "
                     "dictionary_learning (ae.pt + config.json) or sparsify (cfg.json + sae.safetensors)")


def _json_fields(path: Path) -> set[str]:
    """The top-level field names of a JSON object file (none if unreadable: the importer says why)."""
    try:
        return set(read_json_object(path))
    except ModelError:
        return set()
