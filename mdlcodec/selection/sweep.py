"""Calibration of the sparsity per width (the paper's Appendix C, steps 1-2), over a cache of
trained SAEs.

For each width D the sweep finds the smallest k whose trained BatchTopK SAE has test MSE <= tol:
  - the bracket starts from what the cache already holds for (data, D, training settings): lo =
    the largest k known to fail below hi, the smallest k known to pass;
  - with nothing known it trains a guess (the caller's, else D // 4); log MSE is taken as linear
    in log k, with the slope measured from two trials or, from one, the caller's hint (the last
    width's slope; -0.5 at first);
  - while nothing passes it predicts the k reaching tol from the largest trial, aiming 5% past it
    (at most doubling k); while nothing below the smallest passing k fails, it predicts downwards,
    aiming 5% short (at most down to a quarter);
  - once bracketed it interpolates between lo and hi, clamped to the middle half of the bracket
    (so that it shrinks by at least a quarter per trial), rounded, strictly inside (lo, hi);
  - it stops when hi - lo <= max(1, k_resolution * hi) (k_resolution 0: the exact smallest k), after
    max_trials trainings, or when k = min(D, d_in) fails (the width cannot meet tol).
Every choice depends only on the trials known (cached or trained), never on their order, so an
interrupted sweep resumed from its cache trains exactly what the uninterrupted one would have.
MSE is not exactly monotone in k after a fixed training budget; the answer is the smallest passing
k inside the final bracket.

Cache: RUN_DIR/cache/<hash>/ holds the SAE (mdlcodec_sae.json + mdlcodec_sae.safetensors, models.save_sae)
and entry.json (its test evaluation, training record and the key). The hash covers the data
(a fingerprint of the train and test arrays), the SAE config (arch, d_in, d_sae, k) and every
training setting that changes the weights (not the device or the progress bar; the device used is
recorded). entry.json is written last, so an interrupted training leaves no entry and is redone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mdlcodec.core.atomic import write_text
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.jsonio import read_json_object
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.core.runinfo import versions
from mdlcodec.data.shards import ShardedRows
from mdlcodec.models import SAE, SAEConfig, TrainConfig, evaluate, load_sae
from mdlcodec.workflow import train_and_save

CACHE_FORMAT = 1
ENTRY_FILE = "entry.json"
_UNTRACKED_TRAIN_FIELDS = ("device", "progress")  # do not change what is learned
DEFAULT_SLOPE = -0.5  # d log MSE / d log k assumed before two trials measure it

def data_fingerprint(train: np.ndarray, test: np.ndarray) -> str:
    """sha256 (first 16 hex digits) of the shapes and float32 bytes of the train and test splits."""
    h = hashlib.sha256(b"mdlcodec-selection-data-v1")
    for a in (train, test):
        h.update(np.array(a.shape, "<i8").tobytes())
        for s in range(0, len(a), 4096):  # in slices: a memory-mapped file or a shard folder is not read whole
            h.update(np.ascontiguousarray(a[s:s + 4096], dtype="<f4").tobytes())
    return h.hexdigest()[:16]


def train_settings(tcfg: TrainConfig, streamed: bool = False) -> dict:
    """The training settings that decide the weights (everything but device and progress bar; the
    shuffle buffer only where the training split is ``streamed``, a shard folder's)."""
    d = dataclasses.asdict(tcfg)
    for name in _UNTRACKED_TRAIN_FIELDS + (() if streamed else ("shuffle_buffer",)):
        d.pop(name)
    return d


def cache_key(data_fp: str, cfg: SAEConfig, tcfg: TrainConfig, init: str | None = None,
              streamed: bool = False) -> dict:
    """What decides a cached SAE's weights; init: the cache hash of the SAE a fine-tuning started from
    (named only when given, so the keys of SAEs trained from scratch are unchanged); streamed: the
    training split is a shard folder's, read through the shuffle buffer (``train_settings``)."""
    key = {"format": CACHE_FORMAT, "data": data_fp,
           "sae": {"arch": cfg.arch, "d_in": cfg.d_in, "d_sae": cfg.d_sae, "k": cfg.k},
           "train": train_settings(tcfg, streamed)}
    return key if init is None else key | {"init": init}


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Trial:
    """One trained SAE: its k, test MSE, whether it meets tol, its cache hash, its entry."""

    k: int
    mse: float
    passed: bool
    hash: str
    entry: dict


class SAECache:
    """Trained SAEs under ``root`` (RUN_DIR/cache), one folder per configuration hash."""

    def __init__(self, root: str | Path, train: np.ndarray, test: np.ndarray, data_fp: str | None = None):
        self.root = Path(root)
        self.train, self.test = train, test
        self.streamed = isinstance(train, ShardedRows)  # models.train streams it through a shuffle buffer
        self.data_fp = data_fp or data_fingerprint(train, test)
        self.trained = 0   # SAEs trained by this object (cache misses)
        self.reused = 0    # SAEs found in the cache
        self.train_seconds = 0.0

    def path(self, h: str) -> Path:
        return self.root / h

    def lookup(self, cfg: SAEConfig, tcfg: TrainConfig, init: str | None = None) -> dict | None:
        """The entry of this configuration, or None if it was never (fully) trained."""
        p = self.path(key_hash(cache_key(self.data_fp, cfg, tcfg, init, self.streamed))) / ENTRY_FILE
        if not p.is_file():
            return None
        try:
            return read_json_object(p)
        except MdlcodecError:
            return None  # a damaged entry is retrained

    def known_ks(self, arch: str, d_in: int, d_sae: int, tcfg: TrainConfig) -> dict[int, dict]:
        """k -> entry for every cached SAE of this data, architecture, width and training settings."""
        want = {"format": CACHE_FORMAT, "data": self.data_fp, "train": train_settings(tcfg, self.streamed)}
        out = {}
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.glob(f"*/{ENTRY_FILE}")):
            try:
                e = read_json_object(p)
            except MdlcodecError:
                continue
            key = e.get("key", {})
            s = key.get("sae", {})
            if all(key.get(n) == v for n, v in want.items()) and (s.get("arch"), s.get("d_in"), s.get("d_sae")) == (
                    arch, d_in, d_sae) and key_hash(key) == p.parent.name:
                out[int(s["k"])] = e
        return out

    def get_or_train(self, cfg: SAEConfig, tcfg: TrainConfig, progress: Progress = quiet,
                     init: tuple[str, SAE] | None = None) -> dict:
        """The entry of this configuration, training and caching the SAE first if needed; init: (cache
        hash, SAE) of the SAE to fine-tune (models.train_sae's init) instead of training from scratch."""
        entry = self.lookup(cfg, tcfg, init[0] if init else None)
        if entry is not None:
            self.reused += 1
            return entry
        key = cache_key(self.data_fp, cfg, tcfg, init[0] if init else None, self.streamed)
        h = key_hash(key)
        t0 = time.perf_counter()
        folder = self.path(h)
        self.root.mkdir(parents=True, exist_ok=True)
        sae, result = train_and_save(cfg, self.train, tcfg, folder, overwrite=True,  # a folder without entry: redo
                                     init=init[1] if init else None)
        seconds = time.perf_counter() - t0
        ev = evaluate(sae, self.test)
        entry = {"key": key, "hash": h, "config": sae.cfg.to_dict(), "test": ev,
                 "training": {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                              "stopped_early": result.stopped_early, "seconds": seconds,
                              "device": tcfg.device, "torch_threads": torch.get_num_threads(),
                              "final_val_mse": result.history[-1]["val_mse"] if result.history else None},
                 "versions": versions()}
        write_text(folder / ENTRY_FILE, json.dumps(entry, indent=1) + "\n")
        self.trained += 1
        self.train_seconds += seconds
        progress(f"  trained D={cfg.d_sae} k={cfg.k}: test MSE {ev['mse']:.5f}, L0 {ev['l0_mean']:.1f}, "
                 f"alive {ev['alive']}, {len(result.history)} epochs in {seconds:.1f} s")
        return entry

    def load(self, h: str, device: str = "cpu"):
        """The cached SAE with this hash (on CPU, eval mode)."""
        return load_sae(self.path(h)).to(device).eval()


@dataclass
class Calibration:
    """Result for one width: k (None if no k <= k_max meets tol), its trial, and every trial made
    or found, by k."""

    width: int
    tol: float
    k: int | None
    trials: dict[int, Trial] = field(default_factory=dict)
    converged: bool = True
    from_cache: int = 0  # trials found in the cache before this calibration trained anything

    @property
    def chosen(self) -> Trial | None:
        return self.trials.get(self.k) if self.k is not None else None

    def slope(self) -> float | None:
        """d log MSE / d log k across the final bracket (None without a failing and a passing trial)."""
        failing = [k for k, t in self.trials.items() if not t.passed and (self.k is None or k < self.k)]
        return _slope(self, max(failing), self.k) if failing and self.k is not None else None

    def to_dict(self) -> dict:
        return {"width": self.width, "tol": self.tol, "k": self.k, "converged": self.converged,
                "from_cache": self.from_cache,
                "trials": [{"k": t.k, "test_mse": t.mse, "passed": t.passed, "hash": t.hash,
                            "seconds": t.entry["training"]["seconds"]} for t in sorted(self.trials.values(),
                                                                                      key=lambda t: t.k)]}


def _slope(cal: Calibration, k1: int, k2: int) -> float | None:
    """d log MSE / d log k between two trials, if it is negative (MSE falling with k), else None."""
    m1, m2 = cal.trials[k1].mse, cal.trials[k2].mse
    if k1 == k2 or m1 <= 0 or m2 <= 0:
        return None
    s = (math.log(m2) - math.log(m1)) / (math.log(k2) - math.log(k1))
    return s if s < 0 else None


def _predict(k0: int, mse0: float, tol: float, slope: float) -> float:
    """k where MSE reaches tol if log MSE is linear in log k with this (negative) slope through (k0, mse0)."""
    if mse0 <= 0:
        return float(k0)
    log_k = math.log(k0) + (math.log(tol) - math.log(mse0)) / slope
    return math.exp(min(max(log_k, -1.0), 30.0))  # finite even for a nearly flat slope


def calibrate_width(cache: SAECache, width: int, tol: float, tcfg: TrainConfig, arch: str = "batchtopk",
                    k_guess: int | None = None, k_resolution: float = 0.0, max_trials: int = 10,
                    slope_hint: float = DEFAULT_SLOPE, progress: Progress = quiet) -> Calibration:
    """The smallest k (1 <= k <= min(width, d_in)) whose trained SAE has test MSE <= tol (see the
    module docstring for the search). k_guess: where to start when the cache knows nothing;
    slope_hint: d log MSE / d log k assumed where only one trial says where to go next."""
    d_in = cache.train.shape[1]
    k_max = min(width, d_in)
    cal = Calibration(width, tol, None)

    def record(k: int, entry: dict) -> Trial:
        t = Trial(k, float(entry["test"]["mse"]), float(entry["test"]["mse"]) <= tol, entry["hash"], entry)
        cal.trials[k] = t
        return t

    for k, e in cache.known_ks(arch, d_in, width, tcfg).items():
        if k <= k_max:
            record(k, e)
            cal.from_cache += 1

    def bracket() -> tuple[int, int | None]:
        passing = [k for k, t in cal.trials.items() if t.passed]
        hi = min(passing) if passing else None
        failing = [k for k, t in cal.trials.items() if not t.passed and (hi is None or k < hi)]
        return (max(failing) if failing else 0), hi

    def done(lo: int, hi: int | None) -> bool:
        if hi is None:
            return k_max in cal.trials  # k_max failed: the width cannot meet tol
        return hi - lo <= max(1.0, k_resolution * hi)

    trained_here = 0
    while True:
        lo, hi = bracket()
        if done(lo, hi):
            break
        if trained_here >= max_trials:
            cal.converged = False
            break
        passing = sorted(kk for kk, t in cal.trials.items() if t.passed)
        if not cal.trials:
            k = k_guess if k_guess is not None else max(1, width // 4)
        elif hi is None:  # everything tried fails: predict upwards, aiming a little past tol
            known = sorted(cal.trials)
            top = known[-1]
            slope = _slope(cal, known[-2], top) if len(known) > 1 else None
            k = math.ceil(1.05 * _predict(top, cal.trials[top].mse, tol, slope or slope_hint))
            k = min(max(k, top + 1), 2 * top)
        elif lo == 0:  # passes, nothing below fails yet: predict downwards, aiming a little short
            slope = _slope(cal, passing[0], passing[1]) if len(passing) > 1 else None
            k = math.floor(0.95 * _predict(hi, cal.trials[hi].mse, tol, slope or slope_hint))
            k = min(max(k, hi // 4, 1), hi - 1)
        else:  # bracketed: interpolate, kept in the middle half of the bracket so that it shrinks
            guess = _predict(hi, cal.trials[hi].mse, tol, _slope(cal, lo, hi) or slope_hint)
            quarter = (hi - lo) / 4
            k = int(round(min(max(guess, lo + quarter), hi - quarter)))
            k = min(max(k, lo + 1), hi - 1)
        k = min(max(1, k), k_max)
        progress(f"  D={width}: bracket ({lo}, {hi if hi is not None else '?'}], training k={k}")
        entry = cache.get_or_train(SAEConfig(arch=arch, d_in=d_in, d_sae=width, k=k), tcfg, progress)
        record(k, entry)
        trained_here += 1
    lo, hi = bracket()
    cal.k = hi
    return cal
