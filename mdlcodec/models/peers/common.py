"""What every importer shares: reading a peer's JSON and safetensors files, checking its tensors
(names, shapes, dtypes, NaN) and its config fields, each refusal one ModelError line naming the file
and what is wrong; and building the mdlcodec SAE the peer's weights define."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from mdlcodec.core.errors import ModelError, first_line
from mdlcodec.core.paths import regular_file
from mdlcodec.models.base import SAE, SAEConfig, make_sae


@dataclass
class Imported:
    """A peer's SAE as an mdlcodec SAE: the SAE (eval mode, on the CPU), the format it came in
    ("saelens", "dictionary_learning", "sparsify"), the peer's own name for its class or
    architecture, and what the user should know about the conversion (one line each)."""

    sae: SAE
    format: str
    peer_class: str
    warnings: list[str] = field(default_factory=list)


def read_safetensors(path: Path) -> dict[str, Tensor]:
    regular_file(path, error=ModelError)  # missing, or a FIFO that would block the read
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as e:  # safetensors raises several types for damaged files
        raise ModelError(f"cannot read {path}: {first_line(e)}") from None


def positive_int(cfg: dict[str, Any], name: str, where: Path, default: Any = None) -> int:
    """cfg[name] as a positive integer (or default where absent); ModelError naming the file otherwise."""
    v = cfg.get(name, default)
    if v is None:
        raise ModelError(f"{where} lacks the field {name!r}")
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ModelError(f"{where}: {name} must be a positive integer, got {v!r}")
    return v


def flag(cfg: dict[str, Any], name: str, where: Path, default: bool) -> bool:
    v = cfg.get(name, default)
    if not isinstance(v, bool):
        raise ModelError(f"{where}: {name} must be true or false, got {v!r}")
    return v


def check_names(tensors: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...], where: Path) -> None:
    """Refuse a weights file that lacks a tensor or holds one the conversion would silently ignore."""
    missing = [n for n in required if n not in tensors]
    if missing:
        raise ModelError(f"{where} lacks tensor(s) {', '.join(missing)}")
    unexpected = sorted(set(tensors) - set(required) - set(optional))
    if unexpected:
        raise ModelError(f"{where} holds tensor(s) this importer does not know: {', '.join(unexpected)}")


def weight(tensors: dict[str, Tensor], name: str, shape: tuple[int, ...], where: Path, finite: bool = True) -> Tensor:
    """tensors[name] as a contiguous float32 CPU tensor after checking its shape and that it is
    floating point (float16, bfloat16 and float64 convert) and holds no NaN (nor Inf if finite)."""
    t = tensors[name]
    if not isinstance(t, Tensor):
        raise ModelError(f"{where}: {name} is a {type(t).__name__}, not a tensor")
    if not t.is_floating_point():
        raise ModelError(f"{where}: {name} is {t.dtype}; expected floating-point weights")
    if tuple(t.shape) != shape:
        raise ModelError(f"{where}: {name} has shape {list(t.shape)}, expected {list(shape)}")
    t = t.detach().to("cpu", torch.float32).contiguous()
    if bool(t.isnan().any()) or (finite and not bool(t.isfinite().all())):
        raise ModelError(f"{where}: {name} holds {'NaN or Inf' if finite else 'NaN'} values")
    return t


def scalar(tensors: dict[str, Tensor], name: str, where: Path) -> Tensor:
    """A one-element tensor (any shape holding one number)."""
    t = tensors[name]
    if not isinstance(t, Tensor) or t.numel() != 1:
        raise ModelError(f"{where}: {name} should hold one number, has shape {list(getattr(t, 'shape', []))}")
    return t.reshape(())


def build(cfg: SAEConfig, W_enc: Tensor, b_enc: Tensor, W_dec: Tensor, b_dec: Tensor,
          threshold: Tensor | None = None) -> SAE:
    """The mdlcodec SAE of cfg (validated by make_sae) with these float32 weights, in eval mode."""
    sae = make_sae(cfg, torch.Generator().manual_seed(0))  # a seeded generator leaves the global RNG alone
    with torch.no_grad():
        for name, w in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec),
                        ("threshold", threshold)):
            if w is not None:
                getattr(sae, name).copy_(w)
    return sae.eval()


def refuse_without_threshold(use_threshold: bool, fmt: str) -> None:
    """ModelError unless use_threshold: turning the threshold off is for dictionary_learning's AutoEncoderTopK only."""
    if not use_threshold:
        raise ModelError(f"use_threshold=False is for dictionary_learning's AutoEncoderTopK, not a {fmt} SAE")
