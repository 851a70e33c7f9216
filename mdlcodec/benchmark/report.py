"""Writing a benchmark's results: JSON, a markdown table and the rate-distortion PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mdlcodec.baselines import COMPRESSORS
from mdlcodec.core.atomic import save_figure, write_text


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
    lines = [intro + f"Lossy methods matched at test MSE <= {r['max_mse']:g}. \"file\" is bits per sample of "
             f"every byte written (8 * bytes / {r['n_test']:,}); \"+ decoder bits\" adds the decoder's float32 weights "
             f"once (the two-part term), spread over the {r['n_test']:,} test samples; \"self-contained\" files carry decoder and tables inside. "
             f"Time ratios are to {r['timing_reference']} in the same run."]
    lines.append("")
    lines.append("| method | file bits/sample | + decoder bits | test MSE | FVU | encode samples/s | decode samples/s "
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
        sae, bits, mse = c.get("sae_best", c["sae"]), c.get("sae_best_bits_per_sample", c["sae_bits_per_sample"]), \
            c.get("sae_best_mse", c["sae_mse"])
        other = c["pca"] if c["shorter"] == sae else sae
        ratio = c["ratio_pca_over_sae"] if c["shorter"] == sae else 1 / c["ratio_pca_over_sae"]
        if "sae_best" in c:
            lines.append(f"{c['sae']}: plain {c['sae_bits_per_sample']:.1f} bits/sample, shortest valid file "
                         f"{bits:.1f} ({sae}).")
        lines.append(f"At test MSE <= {r['max_mse']:g}: {sae} {bits:.1f} bits/sample "
                     f"(MSE {mse:.5f}) vs {c['pca']} {c['pca_bits_per_sample']:.1f} (MSE {c['pca_mse']:.5f}): "
                     f"**{c['shorter']} is shorter**, {ratio:.2f}x fewer bits than {other}. With each decoder sent once "
                     f"for these {r['n_test']:,} samples: {c['sae_with_decoder_bits_per_sample']:.0f} vs "
                     f"{c['pca_with_decoder_bits_per_sample']:.0f} bits/sample.")
    for s in r.get("skipped", ()):
        lines.append(f"**Skipped {s['method']}**: {s['reason']}; not measured.")
    if r.get("sae_training"):
        for t in r["sae_training"]:
            lines.append(f"SAE {t['label']} trained by the bench: {t['arch']} width {t['d_sae']} k {t['k']}, "
                         f"{t['epochs']} epochs, {t['seconds']:.0f} s"
                         + (f", saved in {t['saved']}." if t.get("saved") else "."))
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
    ax.set_ylabel("file bits per sample (every byte)")
    ax.set_title(results.get("dataset") or "rate-distortion", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_results(results: dict, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
    """results.json, results.md and (if there are curves and ``plot``) rd.png in out_dir (created
    if missing); each written to a temporary file and renamed into place."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    write_text(paths["json"], json.dumps(results, indent=1) + "\n")
    write_text(paths["markdown"], markdown_table(results))
    if plot and results.get("rd"):
        paths["png"] = out / "rd.png"
        plot_rd(results, paths["png"])
    return paths
