"""The MDL-SAE selection (the paper's Appendix C) from a dataset to results.

    results = run_selection(ds, SelectionConfig(tol=0.015, widths=(64, 128, 256)), "runs/sel")

1. calibrate: per width, the smallest k whose trained SAE meets test MSE <= tol (sweep.py);
2. precision: the coarsest uniform step keeping the quantised test MSE <= tol;
3. measure: the test split's cross-entropy under the tables, and the payload and file bits of
   its real .mdlc file, with the decoder bits (measure.py);
4. select, among every trained SAE that meets tol (the calibrated k per width and any larger k
   the calibration trained), the one whose test file is shortest: the eps-MDL-optimal SAE (the
   argmin of the cross-entropy is reported beside it). "curve" is the file bits of the calibrated k
   per width, the paper's Figure 2A, and says whether its minimum is interior;
5. the dense baseline at the same tol: PCA transform coding.

With objective "mdl" among ``objectives``, each width also gets one SAE trained for description
length: its BatchTopK SAE with the shortest file (the calibrated k or a larger one) made a JumpReLU SAE (its threshold on every latent,
models.jumprelu.jumprelu_from) and fine-tuned with objective "mdl" (models.rate: MSE + beta * the
estimated bits, beta steered to the tolerance) for the same number of epochs at MDL_LR. These rows
(method "sae-mdl") are candidates beside the BatchTopK ones; results["objectives"] names the
shortest file of each objective and which wins.

With ``rdo``, each width's shortest-file SAE (not every trial) is also coded by the shortest of
per-feature steps and rate-distortion optimised encoding within the tolerance
(``measure.measure_optimised``; same decoder and format): the row adds ``optimised`` (its figures)
and ``best_file_bits`` (the shorter file of the two that meet the tolerance), and the selection,
the objectives and the PCA verdict then compare ``best_file_bits``: the description length
reported is that of the shortest valid code. ``selected`` then says which ``encoding`` won, with
``plain_file_bits`` and ``optimised_file_bits`` beside it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.core.runinfo import machine, versions
from mdlcodec.data.stream import DEFAULT_BUFFER_ROWS
from mdlcodec.measurement.measure import feature_density, measure_optimised, measure_pca, measure_sae
from mdlcodec.models import TrainConfig
from mdlcodec.models.jumprelu import jumprelu_from
from mdlcodec.selection.sweep import DEFAULT_SLOPE, SAECache, calibrate_width

FULL_WIDTHS = (32, 64, 128, 256, 512, 1024, 2048, 4096)
QUICK_WIDTHS = (32, 64, 128, 256, 512, 1024)
OBJECTIVES = ("mse", "mdl")
MDL_LR = 1e-3     # learning rate of the "mdl" fine-tuning
MDL_BETA = 1.0    # where its beta starts (dual ascent then follows the tolerance)


@dataclass
class SelectionConfig:
    """tol: test MSE bound (mean over samples and dimensions); widths: dictionary sizes D tried;
    arch: the SAE architecture (k = mean active latents); epochs, lr, batch_size, patience: the
    fixed training budget of every SAE (early stopping on a held-out tenth of the training split);
    k_resolution: calibration stops when the bracket [lo, hi] on k is within max(1, k_resolution * hi)
    (0: the exact smallest passing k); max_trials: most SAEs trained per width; pca: add the dense
    baseline row; objectives: "mse" (the BatchTopK sweep, always) and "mdl" (see the module docstring);
    shuffle_buffer: rows of the shuffle buffer when a shard folder's training split is streamed
    (models.train); device: where the SAEs train and encode (fit, measure); rdo: also code each
    width's shortest-file SAE with per-feature steps and RDO (see the module docstring; minutes per
    SAE on a few CPU cores)."""

    tol: float = 0.015
    widths: tuple[int, ...] = FULL_WIDTHS
    arch: str = "batchtopk"
    epochs: int = 60
    lr: float = 4e-3
    batch_size: int = 256
    patience: int = 10
    seed: int = 0
    device: str = "cpu"
    k_resolution: float = 0.0
    max_trials: int = 10
    pca: bool = True
    objectives: tuple[str, ...] = ("mse",)
    shuffle_buffer: int = DEFAULT_BUFFER_ROWS
    rdo: bool = False

    @classmethod
    def quick(cls, **overrides) -> "SelectionConfig":
        """The quick setting: fewer widths, a shorter training budget, k to within 10%."""
        return cls(**{"widths": QUICK_WIDTHS, "epochs": 30, "patience": 5, "k_resolution": 0.1, **overrides})

    def check(self) -> None:
        if not (np.isfinite(self.tol) and self.tol > 0):
            raise MdlcodecError(f"tolerance must be a positive MSE, got {self.tol}")
        if not self.widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in self.widths):
            raise MdlcodecError(f"widths must be positive integers, got {list(self.widths)}")
        if len(set(self.widths)) != len(self.widths):
            raise MdlcodecError(f"widths repeat: {list(self.widths)}")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1 or not self.lr > 0 or self.max_trials < 1:
            raise MdlcodecError("epochs, patience, batch size, learning rate and max trials must be positive")
        if "mse" not in self.objectives or not set(self.objectives) <= set(OBJECTIVES):
            raise MdlcodecError(f"objectives must include mse, from {', '.join(OBJECTIVES)}; got "
                                f"{', '.join(self.objectives)}", param="objectives")
        if not 0 <= self.k_resolution < 1:
            raise MdlcodecError(f"k resolution must be in [0, 1), got {self.k_resolution}")

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, patience=self.patience,
                           seed=self.seed, device=self.device, progress=False, shuffle_buffer=self.shuffle_buffer)

    def mdl_train_config(self) -> TrainConfig:
        """The "mdl" fine-tuning: the same epochs and batch, MDL_LR, beta from MDL_BETA toward tol."""
        return dataclasses.replace(self.train_config(), lr=MDL_LR, objective="mdl", beta=MDL_BETA, target_mse=self.tol)


@dataclass
class Selected:
    """What the figures need beyond results.json: per measured SAE (by cache hash), the decoder
    rows [D, d_in] and each feature's density on the training split [D]."""

    decoders: dict[str, np.ndarray]
    densities: dict[str, np.ndarray]


def run_selection(ds, cfg: SelectionConfig, run_dir: str | Path, progress: Progress = quiet,
                  command: str | None = None) -> tuple[dict, Selected]:
    """Run the five steps on a Dataset (train/test splits); trained SAEs are cached under
    RUN_DIR/cache. Returns the results (JSON-serialisable, see results.py) and the figures' inputs."""
    cfg.check()
    t_start = time.perf_counter()
    tcfg = cfg.train_config()
    cache = SAECache(Path(run_dir) / "cache", ds.train, ds.test)
    rows, extra = [], Selected({}, {})
    prev_k, slope = None, DEFAULT_SLOPE
    for width in sorted(cfg.widths):
        progress(f"width {width}: calibrating k (tol {cfg.tol:g})")
        guess = max(1, round(0.9 * prev_k)) if prev_k else None
        cal = calibrate_width(cache, width, cfg.tol, tcfg, cfg.arch, k_guess=guess, k_resolution=cfg.k_resolution,
                              max_trials=cfg.max_trials, slope_hint=slope, progress=progress)
        calibration = cal.to_dict()
        if cal.k is None:
            progress(f"width {width}: no k <= {min(width, ds.d)} meets test MSE <= {cfg.tol:g}")
            rows.append({"method": "sae", "width": width, "k": None, "calibrated": True, "calibration": calibration})
            continue
        prev_k, slope = cal.k, cal.slope() or slope
        for trial in sorted((t for t in cal.trials.values() if t.passed), key=lambda t: t.k):
            t0 = time.perf_counter()
            codec, m = measure_sae(cache.load(trial.hash, cfg.device), ds.train, ds.test, cfg.tol, cfg.device)
            extra.decoders[trial.hash] = codec.decoder.W_dec
            extra.densities[trial.hash] = feature_density(codec, ds.train)
            ev, tr = trial.entry["test"], trial.entry["training"]
            row = {"method": "sae", "width": width, "k": trial.k, "calibrated": trial.k == cal.k, "hash": trial.hash,
                   "l0": ev["l0_mean"], "l0_std": ev["l0_std"], "test_mse": ev["mse"], "fvu": ev["fvu"],
                   "alive": ev["alive"], "dead_fraction": ev["dead_fraction"], "epochs_run": tr["epochs_run"],
                   "best_epoch": tr["best_epoch"], "train_seconds": tr["seconds"], **m,
                   "measure_seconds": time.perf_counter() - t0}
            if row["calibrated"]:
                row["calibration"] = calibration
                progress(f"width {width}: k {cal.k}, L0 {row['l0']:.1f}, test MSE {row['test_mse']:.5f}, "
                         f"{row['bits_per_value']:.2f} bits/value, cross-entropy {m['cross_entropy_bits']['total']:.1f}, "
                         f"file {m['file_bits']:.1f} bits/sample")
            rows.append(row)
        if "mdl" in cfg.objectives:
            start = min((r for r in rows if r["width"] == width and "file_bits" in r), key=lambda r: r["file_bits"])
            rows.append(_mdl_row(cache, start, ds, cfg, extra, progress))
        if cfg.rdo:
            _add_optimised(cache, [r for r in rows if r["width"] == width and "file_bits" in r], ds, cfg, progress)

    measured = [r for r in rows if "file_bits" in r]
    if not measured:
        raise MdlcodecError(f"no width in {sorted(cfg.widths)} meets test MSE <= {cfg.tol:g} with any k",
                            param="tol")
    best = min(measured, key=file_bits)
    best_ce = min(measured, key=lambda r: r["cross_entropy_bits"]["total"])
    curve = [r for r in measured if r["method"] == "sae" and r["calibrated"]]
    best_on_curve = min(curve, key=lambda r: r["file_bits"])
    i = curve.index(best_on_curve)
    pca_row = None
    if cfg.pca:
        t0 = time.perf_counter()
        _, m = measure_pca(ds.train, ds.test, cfg.tol)
        pca_row = {"method": "pca", "width": m["components"], "k": None, "l0": m["quantised_l0"],
                   "test_mse": None, "alive": m["components"], **m, "seconds": time.perf_counter() - t0}
        progress(f"PCA: {m['components']} components, cross-entropy {m['cross_entropy_bits']['total']:.1f}, "
                 f"file {m['file_bits']:.1f} bits/sample")

    results = {
        "command": command,
        "data": {"spec": ds.spec, "name": ds.name, "n_train": int(len(ds.train)), "n_test": int(len(ds.test)),
                 "d": int(ds.d), "image_shape": list(ds.image_shape) if ds.image_shape else None,
                 "fingerprint": cache.data_fp},
        "config": dataclasses.asdict(cfg) | {"widths": sorted(cfg.widths)},
        "train_config": dataclasses.asdict(tcfg),
        "versions": versions(),
        "machine": machine() | {"device": cfg.device},
        "rows": rows,
        "pca": pca_row,
        "objectives": _objectives(measured) if "mdl" in cfg.objectives else None,
        "selected": {"width": best["width"], "k": best["k"], "l0": best["l0"], "file_bits": file_bits(best),
                     "objective": best.get("objective", "mse"), "arch": best.get("arch", cfg.arch),
                     "cross_entropy_bits": best["cross_entropy_bits"]["total"], "hash": best["hash"],
                     "calibrated": best["calibrated"],
                     "cross_entropy_argmin": {"width": best_ce["width"], "k": best_ce["k"]},
                     "beats_pca": pca_row is None or file_bits(best) < pca_row["file_bits"],
                     **({"encoding": "optimised" if file_bits(best) < best["file_bits"] else "plain",
                         "plain_file_bits": best["file_bits"],
                         "optimised_file_bits": best["optimised"]["file_bits"]} if "optimised" in best else {})},
        "curve": {"widths": [r["width"] for r in curve], "file_bits": [r["file_bits"] for r in curve],
                  "argmin_width": best_on_curve["width"], "interior_minimum": 0 < i < len(curve) - 1},
        "checks": {"max_payload_vs_cross_entropy_deviation": max(abs(r["payload_over_cross_entropy"] - 1)
                                                                for r in measured),
                   "max_file_vs_cross_entropy_deviation": max(abs(r["file_over_cross_entropy"] - 1) for r in measured),
                   "all_quantised_within_tol": all(r["quantised_test_mse"] <= cfg.tol for r in measured),
                   **({"all_optimised_within_tol": all(r["optimised"]["mse"] <= cfg.tol for r in measured
                                                       if "optimised" in r)} if cfg.rdo else {})},
        "timing": {"seconds": time.perf_counter() - t_start, "sae_trained": cache.trained,
                   "sae_reused": cache.reused + sum(r["calibration"]["from_cache"] for r in rows if "calibration" in r),
                   "train_seconds": cache.train_seconds},
    }
    return results, extra


def _mdl_row(cache: SAECache, base: dict, ds, cfg: SelectionConfig, extra: Selected, progress: Progress) -> dict:
    """The "mdl" candidate fine-tuned from the BatchTopK row ``base`` (see the module docstring),
    measured as the others are; a row without figures, saying why, if it cannot meet the tolerance."""
    width = base["width"]
    start = jumprelu_from(cache.load(base["hash"]))
    entry = cache.get_or_train(start.cfg, cfg.mdl_train_config(), progress, init=(base["hash"], start))
    row = {"method": "sae-mdl", "width": width, "k": None, "calibrated": False, "objective": "mdl",
           "arch": "jumprelu", "from_k": base["k"], "hash": entry["hash"]}
    t0 = time.perf_counter()
    try:
        codec, m = measure_sae(cache.load(entry["hash"], "cpu"), ds.train, ds.test, cfg.tol)
    except MdlcodecError as e:
        progress(f"width {width}: the objective-mdl SAE misses the tolerance: {e}")
        return row | {"failed": str(e)}
    extra.decoders[entry["hash"]] = codec.decoder.W_dec
    extra.densities[entry["hash"]] = feature_density(codec, ds.train)
    ev, tr = entry["test"], entry["training"]
    row |= {"l0": ev["l0_mean"], "l0_std": ev["l0_std"], "test_mse": ev["mse"], "fvu": ev["fvu"], "alive": ev["alive"],
            "dead_fraction": ev["dead_fraction"], "epochs_run": tr["epochs_run"], "best_epoch": tr["best_epoch"],
            "train_seconds": tr["seconds"], **m, "measure_seconds": time.perf_counter() - t0}
    progress(f"width {width}: objective mdl (jumprelu from k {base['k']}): L0 {row['l0']:.1f}, test MSE "
             f"{row['test_mse']:.5f}, cross-entropy {m['cross_entropy_bits']['total']:.1f}, file {m['file_bits']:.1f} "
             "bits/sample")
    return row


def file_bits(row: dict) -> float:
    """A measured row's description length: the shorter of its plain and optimised files that meet
    the tolerance (``best_file_bits``, with rdo), else its plain file; bits per test sample."""
    return row.get("best_file_bits", row["file_bits"])


def _add_optimised(cache: SAECache, width_rows: list[dict], ds, cfg: SelectionConfig, progress: Progress) -> None:
    """Code the shortest-file row of ``width_rows`` (one width's measured SAEs) with per-feature steps
    and RDO (``measure.measure_optimised``): it gains ``optimised`` and ``best_file_bits``, the
    optimised file counted only if its quantised test MSE meets cfg.tol."""
    if not width_rows:
        return
    row = min(width_rows, key=lambda r: r["file_bits"])
    progress(f"width {row['width']}: per-feature steps and RDO for test MSE <= {cfg.tol:g}")
    t0 = time.perf_counter()
    _, o = measure_optimised(cache.load(row["hash"], cfg.device), ds.train, ds.test, cfg.tol, cfg.device)
    row["optimised"] = o | {"seconds": time.perf_counter() - t0}
    row["best_file_bits"] = min(row["file_bits"], o["file_bits"]) if o["mse"] <= cfg.tol else row["file_bits"]
    progress(f"width {row['width']}: file {row['file_bits']:.1f} plain, {o['file_bits']:.1f} optimised bits/sample")


def _objectives(measured: list[dict]) -> dict:
    """The shortest file of each objective's SAEs and which objective wins (the shorter)."""
    out = {}
    for name, method in (("mse", "sae"), ("mdl", "sae-mdl")):
        rs = [r for r in measured if r["method"] == method]
        if rs:
            b = min(rs, key=file_bits)
            out[name] = {"width": b["width"], "k": b["k"], "l0": b["l0"], "file_bits": file_bits(b),
                         "payload_bits": b["payload_bits"], "hash": b["hash"]}
    out["winner"] = min((n for n in ("mse", "mdl") if n in out), key=lambda n: out[n]["file_bits"])
    return out
