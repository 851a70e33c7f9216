"""Train an SAE, save it, fit its codec tables, save them: the steps and their order, once.

    tc = train_codec(cfg, train_x, test_x, tcfg, model_dir)   # all four steps
    sae, result = train_and_save(cfg, train_x, tcfg, model_dir)  # the first two (sweep caches)
    codec, report = fit_and_save(sae, train_x, test_x, model_dir)  # the last two (fit-codec)

The SAE is saved before its codec is fitted, so a fit that fails (a tolerance the SAE cannot meet)
keeps the trained weights. A model folder that already holds an SAE is replaced only with
``overwrite``, checked before any training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdlcodec.codec import Codec
from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.core.errors import ModelError
from mdlcodec.models import SAE, SAEConfig, TrainConfig, TrainResult, save_sae, train_sae
from mdlcodec.models.io import holds_sae


@dataclass
class TrainedCodec:
    """What train_codec made: the SAE (eval mode), its training record, its codec and the fit's
    report (test figures, bits per test sample), and the folder both were saved in (or None)."""

    sae: SAE
    training: TrainResult
    codec: Codec
    codec_report: dict
    model_dir: Path | None


def check_model_output(model_dir: str | Path | None, overwrite: bool = False) -> None:
    """Refuse (ModelError) to train into a folder that already holds an SAE unless ``overwrite``, or
    into a path that is a file: checked before the training, not after it."""
    if model_dir is None:
        return
    d = Path(model_dir)
    if d.exists() and not d.is_dir():
        raise ModelError(f"{d} exists and is not a directory")
    if holds_sae(d) and not overwrite:
        raise ModelError(f"{d} already holds an SAE", param="overwrite")


def train_and_save(cfg: SAEConfig, train_x: np.ndarray, tcfg: TrainConfig, model_dir: str | Path | None = None,
                   overwrite: bool = False, init: SAE | None = None, **structure) -> tuple[SAE, TrainResult]:
    """Train cfg on train_x [n, d_in] (models.train_sae: early stopping on a held-out tenth; ``init``
    and ``structure`` as there) and save the SAE to model_dir when given."""
    check_model_output(model_dir, overwrite)
    if init is not None:
        structure["init"] = init
    sae, result = train_sae(cfg, train_x, None, tcfg, **structure)
    if model_dir is not None:
        save_sae(sae, model_dir)
    return sae, result


def fit_and_save(sae: SAE, train_x: np.ndarray, test_x: np.ndarray, model_dir: str | Path | None = None,
                 step: float | None = None, max_mse: float | None = None, device: str = "cpu",
                 hierarchy: str = "auto") -> tuple[Codec, dict]:
    """Fit the codec (codec.precision.fit_codec: the step given, or the coarsest with quantised test
    MSE <= max_mse, or the default 1% rule; tables from train_x) and save its tables to model_dir
    when given (beside every table set fitted before, see Codec.save_tables)."""
    codec, report = fit_codec(sae, train_x, test_x, step, max_mse, device, hierarchy)
    if model_dir is not None:
        codec.save_tables(model_dir)
    return codec, report


def train_codec(cfg: SAEConfig, train_x: np.ndarray, test_x: np.ndarray, tcfg: TrainConfig,
                model_dir: str | Path | None = None, step: float | None = None, max_mse: float | None = None,
                hierarchy: str = "auto", overwrite: bool = False, init: SAE | None = None,
                **structure) -> TrainedCodec:
    """train_and_save, then fit_and_save on the same folder; the codec encodes on tcfg.device."""
    sae, result = train_and_save(cfg, train_x, tcfg, model_dir, overwrite, init, **structure)
    codec, report = fit_and_save(sae, train_x, test_x, model_dir, step, max_mse, tcfg.device, hierarchy)
    return TrainedCodec(sae, result, codec, report, Path(model_dir) if model_dir is not None else None)
