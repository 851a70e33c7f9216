"""Save and load an SAE as a directory: mdlcodec_sae.json (its SAEConfig, field "architecture") and
mdlcodec_sae.safetensors (W_enc, b_enc, W_dec, b_dec as float32, plus the architecture's extra float32
tensors, e.g. jumprelu's "threshold", and its structure tensors as int64, e.g. a tree's "parents").
The round trip is bit-exact.

The names are mdlcodec's own (issue 20): earlier versions wrote the same contents as cfg.json and
sae_weights.safetensors, SAELens' names, which SAELens' ``SAE.load_from_disk`` then tried and failed
to read (and could not read correctly: an mdlcodec SAE computes on x * input_scale; ``mdlcodec export
--to saelens`` writes a folder SAELens reads). Such folders still load (``model_files``), and saving
into one removes the old files once the new ones are in place, so a folder never holds two SAEs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from mdlcodec.core.atomic import atomic_folder, atomic_output
from mdlcodec.core.errors import ModelError
from mdlcodec.core.paths import regular_file
from mdlcodec.models.base import SAE, SAEConfig, architecture, make_sae
from mdlcodec.models.formats import CFG_FILE, OLD_CFG_FILE, OLD_WEIGHTS_FILE, WEIGHTS_FILE, detect, read_json_object

WEIGHT_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")


def _weights(sae: SAE) -> dict[str, torch.Tensor]:
    floats = (*WEIGHT_NAMES, *sae.extra_weights)
    out = {n: getattr(sae, n).detach().to("cpu", torch.float32).contiguous() for n in floats}
    out.update({n: getattr(sae, n).detach().to("cpu", torch.int64).contiguous() for n in sae.structure})
    return out


def write_folder(out: Path, writers) -> Path:
    """Write the files ``writers`` names ((file name, write(path)), in order) into folder ``out`` by
    core.atomic's mechanism, so that folders get 0777 and files 0666 less the umask: a new folder
    appears whole (atomic_folder: built beside it, then renamed; its parents are made); in an existing
    one each file is replaced atomically (atomic_output) and other files are left alone. A writer
    that makes a file of its own (safetensors' save_file writes 0600) gets the mode back."""
    if out.is_dir():
        for name, write in writers:
            with atomic_output(out / name) as tmp:
                mode = stat.S_IMODE(tmp.stat().st_mode)  # atomic_output's 0666 less the umask
                write(tmp)
                os.chmod(tmp, mode)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(out) as tmp:
        mode = stat.S_IMODE(tmp.stat().st_mode) & 0o666  # atomic_folder's 0777 less the umask, no x
        for name, write in writers:
            write(tmp / name)
            os.chmod(tmp / name, mode)
    return out


def save_sae(sae: SAE, model_dir: str | Path) -> Path:
    """Write sae to model_dir (write_folder: a new directory appears whole; in an existing one each
    file is replaced atomically, weights first, and other files are left alone, except the files of
    an SAE that an earlier version saved there (``old_layout``): removed once the new ones are in
    place, weights first, so that the folder holds one SAE)."""
    out = Path(model_dir)
    if out.exists() and not out.is_dir():
        raise ModelError(f"{out} exists and is not a directory")
    old = out.is_dir() and old_layout(out)
    write_folder(out, ((WEIGHTS_FILE, lambda p: Path(p).write_bytes(safetensors.torch.save(_weights(sae)))),
                       (CFG_FILE, lambda p: Path(p).write_text(json.dumps(sae.cfg.to_dict(), indent=2) + "\n"))))
    if old:
        for name in (OLD_WEIGHTS_FILE, OLD_CFG_FILE):  # cfg.json last: it says what the weights were
            if not (out / name).is_dir():
                (out / name).unlink(missing_ok=True)
    return out


def old_layout(d: str | Path) -> bool:
    """Whether folder d holds the config of an SAE saved by an mdlcodec before issue 20: a cfg.json
    (a regular file holding a JSON object) with mdlcodec's input_scale field and no SAELens metadata
    (which ``export --to saelens`` writes)."""
    p = Path(d) / OLD_CFG_FILE
    if not p.is_file():
        return False
    try:
        fields = read_json_object(p)
    except ModelError:
        return False
    return "input_scale" in fields and "metadata" not in fields


def model_files(d: str | Path) -> tuple[Path, Path]:
    """The (config, weights) files of the mdlcodec model in folder d: CFG_FILE and WEIGHTS_FILE, or,
    where neither is there and an old name is, OLD_CFG_FILE and OLD_WEIGHTS_FILE (a folder saved
    before issue 20; a peer's folder under the same names is then refused by load_sae, as before)."""
    d = Path(d)
    new = (d / CFG_FILE, d / WEIGHTS_FILE)
    old = (d / OLD_CFG_FILE, d / OLD_WEIGHTS_FILE)
    if not any(p.exists() or p.is_symlink() for p in new) and any(p.exists() or p.is_symlink() for p in old):
        return old
    return new


def holds_sae(d: str | Path) -> bool:
    """Whether folder d holds (part of) an SAE under mdlcodec's names, now or before issue 20."""
    d = Path(d)
    return any((d / n).exists() or (d / n).is_symlink()
               for n in (CFG_FILE, WEIGHTS_FILE, OLD_CFG_FILE, OLD_WEIGHTS_FILE))


def _refuse_peer_folder(d: Path) -> None:
    """ModelError saying how to import it if folder d holds a peer's SAE (SAELens, sparsify,
    dictionary_learning) rather than an mdlcodec model."""
    try:
        fmt = detect(d)
    except ModelError:
        return
    raise ModelError(f"{d} holds a {fmt} SAE, not an mdlcodec model: convert it once with "
                     f"`mdlcodec import {d} -o MODEL` (in Python, mdlcodec.as_sae or models.peers.import_sae)")


def load_sae_weights(model_dir: str | Path, names: tuple[str, ...] | None = None) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    """The config of the SAE saved in model_dir and its tensors named in ``names`` (all of them if
    None), read from the weights file without building the SAE (only the named tensors are read into
    memory): each float32 [the shape the config implies] and finite, a structure tensor int64. The
    checks of ``load_sae`` (it reads through here): ModelError (one line) if the directory is missing,
    damaged, holds a peer's SAE, or its weights file lacks a tensor, holds one the architecture does not
    have, or one of another shape or dtype than the config implies."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelError(f"model directory {d} does not exist")
    cfg_path, w_path = model_files(d)
    for p in (cfg_path, w_path):
        if not p.exists():
            _refuse_peer_folder(d)
            raise ModelError(f"{d} is not an SAE directory: {p.name} is missing")
        regular_file(p, error=ModelError)  # a FIFO would block the read for ever
    raw = read_json_object(cfg_path)
    try:
        cfg = SAEConfig.from_dict(raw)
    except ModelError as e:
        _refuse_peer_folder(d)
        raise ModelError(f"{cfg_path}: {e}") from None
    cls = architecture(cfg)
    structure, extra = cls.structure, cls.extra_weights
    floats = (*WEIGHT_NAMES, *extra)
    layout = {"W_enc": [cfg.d_in, cfg.d_sae], "b_enc": [cfg.d_sae], "W_dec": [cfg.d_sae, cfg.d_in], "b_dec": [cfg.d_in]}
    weights: dict[str, torch.Tensor] = {}
    try:
        with safetensors.safe_open(str(w_path), "pt") as f:
            present = set(f.keys())
            missing = [n for n in (*floats, *structure) if n not in present]
            if missing:
                raise ModelError(f"{w_path} lacks weight(s) {', '.join(missing)}")
            unknown = sorted(present - {*floats, *structure})
            if unknown:
                raise ModelError(f"{w_path} holds tensor(s) a {cfg.arch} SAE does not have: {', '.join(unknown[:5])}")
            for n, shape in layout.items():  # before anything is read: sizes are allocated only if the file has them
                got = list(f.get_slice(n).get_shape())
                if got != shape:
                    raise ModelError(f"{w_path}: {n} has shape {got}, {cfg_path.name} implies {shape}")
            for n in (floats + structure if names is None else names):
                weights[n] = f.get_tensor(n)
    except ModelError:
        raise
    except Exception as e:  # safetensors raises several types for damaged files
        raise ModelError(f"cannot read {w_path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    for n, w in weights.items():
        if n in structure:
            if w.dtype != torch.int64:
                raise ModelError(f"{w_path}: {n} is {w.dtype}, expected int64")
            continue
        if w.dtype != torch.float32:
            raise ModelError(f"{w_path}: {n} is {w.dtype}, expected float32")
        if not torch.isfinite(w).all():
            raise ModelError(f"{w_path}: {n} holds NaN or Inf")
    return cfg, weights


def load_sae(model_dir: str | Path, device: str = "cpu") -> SAE:
    """Read an SAE saved by save_sae (by this version or, under the old names, an earlier one:
    ``model_files``); ModelError (one line) if the directory is missing, damaged or its weights do
    not have the shapes its config file implies (``load_sae_weights``). The SAE's parameters are the
    tensors read from the file (not copies of them): one copy of the weights in memory."""
    cfg, weights = load_sae_weights(model_dir)
    w_path = model_files(model_dir)[1]
    cls = architecture(cfg)
    try:  # weights are replaced; a seeded generator keeps the global RNG untouched
        sae = make_sae(cfg, torch.Generator().manual_seed(0), **{n: weights[n] for n in cls.structure})
    except ModelError as e:  # cfg is valid: the structure tensors are not
        raise ModelError(f"{w_path}: {e}") from None
    with torch.no_grad():
        for n in (*WEIGHT_NAMES, *cls.extra_weights):
            p, w = getattr(sae, n), weights.pop(n)
            if w.shape != p.shape:
                raise ModelError(f"{w_path}: {n} has shape {list(w.shape)}, the config implies {list(p.shape)}")
            p.data = w  # the initial values are freed
    return sae.to(device).eval()
