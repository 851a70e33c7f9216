"""Bits per sample against what users would otherwise do: run every method on a dataset's test
split, collect the figures, and write them as results JSON, a markdown table and a
rate-distortion PNG.

Every figure is measured, none is estimated:
- bits per sample = 8 * len(bytes) / n_test, from the bytes each method actually writes;
- distortion on the test split: MSE (mean over samples and dimensions) and FVU (summed squared
  error over summed squared deviation from the test mean), from decode(encode(x));
- throughput: samples per second of encode and of decode (wall clock, best of up to 5 runs while
  under a second in all), and the same times as ratios to int8+zstd's, measured in the same run;
  the machine (platform, cores, torch threads) is recorded beside them.
Lossy methods are compared at one test MSE (``max_mse``): the SAE codecs take the coarsest step
meeting it (``precision.coarsest_step``) and PCA the (components, step) with the fewest bits
meeting it (``baselines.match_pca``).
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mdlcodec.atomic import atomic_output
from mdlcodec.baselines import (COMPRESSORS, PCA, CodecMethod, IntCompressed, Method, StoredFloat, match_pca,
                                pca_candidates)
from mdlcodec.codec import Codec, EntropyModel, Quantiser, SparseCodes
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.codec.hierarchy import Hierarchy, chow_liu, prune_to_forest
from mdlcodec.codec.precision import coarsest_step
from mdlcodec.errors import ModelError

TIMING_REFERENCE = "int8+zstd"
PAPER_MNIST_MAX_MSE = 0.015
"""The paper's tolerance on MNIST test MSE (pixels in [0, 1]), Appendix C.2."""

RD_INT_BITS = (2, 3, 4, 5, 6, 7, 8)
RD_PCA_FACTORS = (0.1, 0.25, 0.5, 0.7, 1.4, 2.0, 2.8, 4.0)
RD_SAE_STEP_FACTORS = (0.25, 0.5, 2.0, 4.0, 8.0)
RD_PCA_CANDIDATES = 6  # component counts tried per rate-distortion point (12 at the matched point)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def machine() -> dict:
    """Where the timings were taken: platform, processor, logical cores, torch threads."""
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__}


def _best_time(fn: Callable[[], object], budget_s: float = 1.0, max_runs: int = 5) -> tuple[float, object]:
    """(fastest wall-clock seconds of fn(), its last result): runs again while under budget_s in all."""
    best, spent, runs, out = np.inf, 0.0, 0, None
    while runs < max_runs and (runs == 0 or spent < budget_s):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best, out


def distortion(x: np.ndarray, x_hat: np.ndarray) -> dict:
    """MSE (mean over samples and dimensions), FVU and the largest absolute error, in float64."""
    x64 = np.asarray(x, np.float64)
    err = np.asarray(x_hat, np.float64) - x64
    sse = float((err ** 2).sum())
    total_var = float(((x64 - x64.mean(axis=0)) ** 2).sum())
    return {"mse": sse / x64.size, "fvu": sse / total_var if total_var > 0 else float("nan"),
            "max_abs_error": float(np.abs(err).max()) if err.size else 0.0}


def measure(method: Method, x: np.ndarray, timed: bool = True) -> dict:
    """One method on test activations x [n, d]: bytes, bits per sample, distortion, and (if timed)
    encode/decode seconds and samples per second. Lossless methods are checked to round-trip exactly."""
    n = len(x)
    if timed:
        t_enc, data = _best_time(lambda: method.encode(x))
        t_dec, x_hat = _best_time(lambda: method.decode(data))
    else:
        data = method.encode(x)
        x_hat = method.decode(data)
    if method.lossless and not np.array_equal(x_hat, np.asarray(x, np.float32)):
        raise AssertionError(f"{method.name} claims to be lossless but does not round-trip exactly")
    out = {"method": method.name, "lossless": method.lossless, "bytes": len(data), "n": n,
           "bits_per_sample": 8 * len(data) / n, "model_bits": method.model_bits,
           "model_bits_per_sample": method.model_bits / n, **distortion(x, x_hat), "params": method.params}
    if timed:
        out.update({"encode_s": t_enc, "decode_s": t_dec, "encode_samples_per_s": n / t_enc,
                    "decode_samples_per_s": n / t_dec})
    return out


@dataclass
class SAEEntry:
    """An SAE to benchmark: a label for the table, the model, and where it came from."""

    label: str
    sae: object
    source: str


def _sae_rd(codec: Codec, z_train: np.ndarray, test: np.ndarray, factors) -> list[dict]:
    """Rate-distortion points of an SAE codec: its matched step times each factor, the entropy model
    refit on the training latents each time; bits from real bytes of the test split."""
    points = []
    for f in factors:
        step = float(np.float32(codec.quantiser.step[0] * f))
        q = Quantiser.uniform(step, codec.decoder.d_sae)
        em = EntropyModel.fit(SparseCodes.concat([q.quantise(z_train[s:s + DEFAULT_CHUNK])
                                                  for s in range(0, len(z_train), DEFAULT_CHUNK)]))
        r = measure(CodecMethod(Codec(codec.decoder, q, em, codec.encoder), "rd"), test, timed=False)
        points.append({"step": step, "bits_per_sample": r["bits_per_sample"], "mse": r["mse"], "fvu": r["fvu"]})
    return points


def run_benchmark(train: np.ndarray, test: np.ndarray, max_mse: float, saes: list[SAEEntry] = (),
                  rd: bool = True, device: str = "cpu", progress: Progress = _quiet,
                  pca_ms: list[int] | None = None) -> dict:
    """Every method on the test split [n, d] (models fit on the training split), lossy ones matched
    at test MSE ``max_mse``. Returns a JSON-serialisable dict: "methods" (one row per method, see
    ``measure``), "rd" (rate-distortion points per lossy family), "comparison" (SAE codecs against
    PCA at max_mse), "machine". ``pca_ms``: the component counts PCA tries (default
    ``baselines.pca_candidates``)."""
    from mdlcodec.codec.codec import Decoder

    train = np.ascontiguousarray(train, np.float32)
    test = np.ascontiguousarray(test, np.float32)
    rows: list[dict] = []
    curves: dict[str, list[dict]] = {}

    methods: list[Method] = [StoredFloat("float32"), StoredFloat("float16")]
    methods += [IntCompressed(c, 8) for c in COMPRESSORS]
    for m in methods:
        progress(f"{m.name}")
        rows.append(measure(m, test))
    if rd:
        curves["float16"] = [{"bits_per_sample": rows[1]["bits_per_sample"], "mse": rows[1]["mse"]}]

    progress("PCA: fit and search (components, step) for the target MSE")
    t = time.perf_counter()
    pca = PCA.fit(train)
    match = match_pca(pca, train, test, max_mse, pca_ms)
    search_s = time.perf_counter() - t
    params = {"components": match.m, "search": match.search, "search_s": search_s}
    pca_label = f"pca m={match.m}"
    rows.append(measure(CodecMethod(match.codec, pca_label, params=params), test))
    rows.append(measure(CodecMethod(match.codec, f"{pca_label} self-contained", embed_model=True,
                                    params={"components": match.m}), test))
    pca_row = rows[-2]

    comparison = []
    for entry in saes:
        progress(f"SAE {entry.label}: step for MSE <= {max_mse:g}")
        dec = Decoder.from_sae(entry.sae)
        enc = Codec.sae_encoder(entry.sae, device)
        z_test = enc(test)
        own_mse = float(np.mean((dec.reconstruct(z_test).astype(np.float64) - test) ** 2))
        try:
            step = coarsest_step(dec, z_test, test, max_mse)
        except ValueError:
            raise ModelError(f"SAE {entry.label} ({entry.source}) has test MSE {own_mse:.6g} before quantisation, "
                             f"above the target {max_mse:g}: choose a larger --max-mse or a better SAE") from None
        z_train = enc(train)
        q = Quantiser.uniform(step, dec.d_sae)
        codes_train = SparseCodes.concat([q.quantise(z_train[s:s + DEFAULT_CHUNK])
                                          for s in range(0, len(z_train), DEFAULT_CHUNK)])
        codec = Codec(dec, q, EntropyModel.fit(codes_train), enc)
        codes_test = q.quantise(z_test)
        extra = {"source": entry.source, "arch": entry.sae.cfg.arch, "k": entry.sae.cfg.k,
                 "unquantised_test_mse": own_mse, "l0": codes_test.nnz / len(test),
                 "bits_per_value": codec.chunk_coder.ideal_bits(codes_test)["values"] / max(codes_test.nnz, 1),
                 "model_expected_bits_per_sample": codec.entropy_model.expected_bits_per_sample()["total"]}
        progress(f"SAE {entry.label}: encode/decode")
        label = f"sae {entry.label}"
        rows.append(measure(CodecMethod(codec, label, params=extra), test))
        sae_row = rows[-1]
        rows.append(measure(CodecMethod(codec, f"{label} self-contained", embed_model=True), test))
        forests = [("chow-liu", chow_liu(codes_train))]
        if hasattr(entry.sae, "parents"):  # a tree SAE: its own forest, coded as a tree
            parents = entry.sae.parents.cpu().numpy()
            forests.insert(0, ("tree", Hierarchy.count(prune_to_forest(codes_train, parents), parents, "tree")))
        for name, forest in forests:
            progress(f"SAE {entry.label}: encode/decode with the {name} hierarchy")
            coded = codec.with_hierarchy(forest)
            rows.append(measure(CodecMethod(coded, f"{label} {name}", params={
                **extra, "hierarchy": name, "edges": forest.n_edges, "hierarchy_table_bits": coded.hierarchy_bits(),
                "model_expected_bits_per_sample": coded.entropy_model.expected_bits_per_sample()["total"]}), test))
        comparison.append({"sae": label, "sae_bits_per_sample": sae_row["bits_per_sample"], "sae_mse": sae_row["mse"],
                           "pca": pca_label, "pca_bits_per_sample": pca_row["bits_per_sample"],
                           "pca_mse": pca_row["mse"],
                           "shorter": label if sae_row["bits_per_sample"] < pca_row["bits_per_sample"] else pca_label,
                           "ratio_pca_over_sae": pca_row["bits_per_sample"] / sae_row["bits_per_sample"],
                           "sae_with_decoder_bits_per_sample": sae_row["bits_per_sample"] + sae_row["model_bits_per_sample"],
                           "pca_with_decoder_bits_per_sample": pca_row["bits_per_sample"] + pca_row["model_bits_per_sample"]})
        if rd:
            progress(f"SAE {entry.label}: rate-distortion sweep")
            curves[label] = sorted(_sae_rd(codec, z_train, test, RD_SAE_STEP_FACTORS)
                                   + [{"step": step, "bits_per_sample": sae_row["bits_per_sample"],
                                       "mse": sae_row["mse"], "fvu": sae_row["fvu"]}], key=lambda p: p["mse"])

    if rd:
        for c in COMPRESSORS:
            progress(f"rate-distortion: int2..8+{c}")
            curves[f"int+{c}"] = [dict(bits=b, **{k: measure(IntCompressed(c, b), test, timed=False)[k]
                                                 for k in ("bits_per_sample", "mse", "fvu")}) for b in RD_INT_BITS]
        progress("rate-distortion: PCA at other target MSEs")
        pts = [{"target_mse": max_mse, "components": match.m, "step": match.step,
                "bits_per_sample": pca_row["bits_per_sample"], "mse": pca_row["mse"], "fvu": pca_row["fvu"]}]
        for f in RD_PCA_FACTORS:
            try:
                mt = match_pca(pca, train, test, max_mse * f, pca_candidates(pca, test, max_mse * f, RD_PCA_CANDIDATES))
            except Exception as e:  # a target PCA cannot reach is just a missing point
                progress(f"  PCA at MSE {max_mse * f:g}: skipped ({e})")
                continue
            r = measure(CodecMethod(mt.codec, "rd"), test, timed=False)
            pts.append({"target_mse": max_mse * f, "components": mt.m, "step": mt.step,
                        "bits_per_sample": r["bits_per_sample"], "mse": r["mse"], "fvu": r["fvu"]})
        curves["pca"] = sorted(pts, key=lambda p: p["mse"])

    ref = next(r for r in rows if r["method"] == TIMING_REFERENCE)
    for r in rows:
        r["encode_time_ratio"] = r["encode_s"] / ref["encode_s"]
        r["decode_time_ratio"] = r["decode_s"] / ref["decode_s"]
    return {"n_train": len(train), "n_test": len(test), "d": test.shape[1], "max_mse": max_mse,
            "timing_reference": TIMING_REFERENCE, "methods": rows, "rd": curves, "comparison": comparison,
            "machine": machine()}


# ---------------------------------------------------------------------------- models for it

DEFAULT_WIDTH, DEFAULT_K, DEFAULT_EPOCHS = 256, 24, 100
"""The SAE the bench trains on data without ground truth (MNIST-sized): BatchTopK, width 256, k 24."""


def bench_sae_config(ds, width: int | None = None, k: int | None = None):
    """The SAE the bench trains when it is given none: BatchTopK; on synthetic data as wide as the
    number of true features with k the true expected L0, otherwise width 256 and k 24 (either
    overridden by ``width``/``k``)."""
    from mdlcodec.models import SAEConfig

    if ds.truth is not None:
        width = width or len(ds.truth.probs)
        k = k or max(1, round(float(ds.truth.probs.sum())))
    return SAEConfig(arch="batchtopk", d_in=ds.d, d_sae=width or DEFAULT_WIDTH, k=k or DEFAULT_K)


def train_bench_sae(ds, cfg, epochs: int = DEFAULT_EPOCHS, device: str = "cpu", seed: int = 0,
                    progress: bool = False) -> tuple[object, dict]:
    """Train cfg on the dataset's training split (early stopping on a held-out tenth of it); returns
    the SAE and what to report about its training (seconds of wall clock included)."""
    from mdlcodec.models import TrainConfig, train_sae

    t = time.perf_counter()
    sae, res = train_sae(cfg, ds.train, None, TrainConfig(epochs=epochs, device=device, seed=seed, progress=progress))
    return sae.cpu(), {"arch": cfg.arch, "d_sae": cfg.d_sae, "k": cfg.k, "epochs": len(res.history),
                       "best_epoch": res.best_epoch, "seed": seed, "seconds": time.perf_counter() - t}


def default_max_mse(ds, saes: list[SAEEntry]) -> float:
    """The target test MSE when none is given: the paper's 0.015 on MNIST; otherwise 1% above the
    largest unquantised test MSE of the SAEs (the codec's default rule)."""
    from mdlcodec.errors import DataError
    from mdlcodec.models import evaluate

    if ds.image_shape == (28, 28) and ds.spec.startswith("mnist"):
        return PAPER_MNIST_MAX_MSE
    if not saes:
        raise DataError("no SAE to set the target MSE from: give --max-mse")
    return 1.01 * max(evaluate(e.sae.cpu(), ds.test)["mse"] for e in saes)


# ------------------------------------------------------------------------------------- output


def _fmt(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"


def markdown_table(results: dict) -> str:
    """The results as markdown: what was measured, one table row per method, the matched-MSE verdict,
    and the machine."""
    r, m = results, results["machine"]
    intro = f"Dataset: {r['dataset']}, d = {r['d']}. " if r.get("dataset") else ""
    lines = [intro + f"Lossy methods matched at test MSE <= {r['max_mse']:g}. Bits per sample from the bytes "
             f"written (8 * bytes / {r['n_test']:,}); \"+ decoder\" adds the decoder's float32 weights once, spread "
             f"over the {r['n_test']:,} test samples; \"self-contained\" files carry decoder and tables inside. "
             f"Time ratios are to {r['timing_reference']} in the same run."]
    lines.append("")
    lines.append("| method | bits/sample | + decoder | test MSE | FVU | encode samples/s | decode samples/s "
                 "| encode time ratio | decode time ratio |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in r["methods"]:
        plus = _fmt(row["bits_per_sample"] + row["model_bits_per_sample"], 5) if row["model_bits"] else "-"
        lines.append(f"| {row['method']} | {_fmt(row['bits_per_sample'], 5)} | {plus} | {_fmt(row['mse'], 3)} "
                     f"| {_fmt(row['fvu'], 3)} | {_fmt(row['encode_samples_per_s'], 3)} "
                     f"| {_fmt(row['decode_samples_per_s'], 3)} | {_fmt(row['encode_time_ratio'], 3)} "
                     f"| {_fmt(row['decode_time_ratio'], 3)} |")
    lines.append("")
    for c in r["comparison"]:
        other = c["pca"] if c["shorter"] == c["sae"] else c["sae"]
        ratio = c["ratio_pca_over_sae"] if c["shorter"] == c["sae"] else 1 / c["ratio_pca_over_sae"]
        lines.append(f"At test MSE <= {r['max_mse']:g}: {c['sae']} {c['sae_bits_per_sample']:.1f} bits/sample "
                     f"(MSE {c['sae_mse']:.5f}) vs {c['pca']} {c['pca_bits_per_sample']:.1f} (MSE {c['pca_mse']:.5f}): "
                     f"**{c['shorter']} is shorter**, {ratio:.2f}x fewer bits than {other}. With each decoder sent once "
                     f"for these {r['n_test']:,} samples: {c['sae_with_decoder_bits_per_sample']:.0f} vs "
                     f"{c['pca_with_decoder_bits_per_sample']:.0f} bits/sample.")
    if r.get("sae_training"):
        for t in r["sae_training"]:
            lines.append(f"SAE {t['label']} trained by the bench: {t['arch']} width {t['d_sae']} k {t['k']}, "
                         f"{t['epochs']} epochs, {t['seconds']:.0f} s.")
    lines.append("")
    lines.append(f"Machine: {m['platform']}, {m['processor']}, {m['cores']} cores, torch {m['torch']} with "
                 f"{m['torch_threads']} thread(s), numpy {m['numpy']}.")
    return "\n".join(lines) + "\n"


def plot_rd(results: dict, path: str | Path) -> None:
    """Bits per sample against test MSE (log-log) for every lossy family, the target MSE marked. The
    axis spans 1/1000 of the target and up; points below it (float16) are stated in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    x_min = results["max_mse"] / 1000
    labels = {"pca": "PCA (best m per MSE)", **{f"int+{c}": f"int2..8 + {c}" for c in COMPRESSORS}}
    for name, pts in results["rd"].items():
        shown = [p for p in pts if p["mse"] >= x_min]
        label = labels.get(name, name)
        if len(shown) < len(pts):
            off = [p for p in pts if p["mse"] < x_min]
            label += "; off axis: " + ", ".join(f"{p['bits_per_sample']:,.0f} bits at MSE {p['mse']:.1e}" for p in off)
        ax.plot([p["mse"] for p in shown], [p["bits_per_sample"] for p in shown], marker="o", ms=4, label=label)
    ax.axvline(results["max_mse"], color="grey", ls="--", lw=1, label=f"target MSE {results['max_mse']:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(left=x_min)
    ax.set_xlabel("test MSE (mean over samples and dimensions)")
    ax.set_ylabel("bits per sample (measured file size)")
    ax.set_title(results.get("dataset") or "rate-distortion", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_results(results: dict, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """results.json, results.md and (if there are curves and ``plot``) rd.png in out_dir (created
    if missing); each written to a temporary file and renamed into place."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    _write_text(paths["json"], json.dumps(results, indent=1) + "\n")
    _write_text(paths["markdown"], markdown_table(results))
    if plot and results.get("rd"):
        paths["png"] = out / "rd.png"
        plot_rd(results, paths["png"])
    return paths
