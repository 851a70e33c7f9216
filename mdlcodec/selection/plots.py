"""The paper's Figure 2 from selection results (matplotlib's object API, no pyplot: PNG files
through the Agg canvas, the caller's backend untouched).

- dl_vs_l0: description length (bits per test sample) against L0, one point per width (its
  calibrated k), the file and the cross-entropy, the selected SAE marked, PCA's dense
  code as a line (2A);
- alive_vs_l0: alive features (on the test split) against L0, beside the width (2B);
- feature_grid: decoder rows as images for the densest, the MDL-optimal and the sparsest SAE, at
  feature-density percentiles 95, 80, 50, 20, 5 (2C). Density is the fraction of training samples
  on which a feature's quantised latent is non-zero; for percentile q the features shown are the
  alive ones whose density is nearest the q-th percentile of the alive features' densities.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from mdlcodec.core.atomic import save_figure

PERCENTILES = (95, 80, 50, 20, 5)
DPI = 90


def _curve(results: dict) -> list[dict]:
    """The calibrated SAE of each width that meets tol, by width."""
    return sorted((r for r in results["rows"] if r["k"] is not None and r["calibrated"]), key=lambda r: r["width"])


def _axis_l0(ax) -> None:
    """Log L0 axis with plain-number labels; L0 often spans less than a decade (MNIST: 13 to 19), where
    only minor ticks fall in range, so those are labelled too when the span is short (under 2 decades)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel("L0 (mean active latents per test sample)")


def plot_dl_vs_l0(results: dict, path: str | Path) -> Path:
    """Figure 2A: DL (bits/sample) against L0, the calibrated k of each width joined in width
    order and labelled; other trained SAEs meeting tol as hollow points; the selected SAE circled."""
    rows = _curve(results)
    l0 = [r["l0"] for r in rows]
    fig = Figure(figsize=(5.6, 3.8))
    ax = fig.subplots()
    ax.plot(l0, [r["file_bits"] for r in rows], "o-", color="C0", label="file (.mdlc, every byte)")
    ax.plot(l0, [r["cross_entropy_bits"]["total"] for r in rows], "x--", color="C1",
            label="cross-entropy under the tables")
    others = [r for r in results["rows"] if r["k"] is not None and not r["calibrated"]]
    if others:
        ax.plot([r["l0"] for r in others], [r["file_bits"] for r in others], "o", mfc="none", mec="C0", ms=4,
                alpha=0.6, label="larger k, also within tol")
    for r in rows:
        ax.annotate(f"D={r['width']}", (r["l0"], r["file_bits"]), textcoords="offset points", xytext=(4, 5),
                    fontsize=7)
    opt = [r for r in results["rows"] if "optimised" in r]
    if opt:
        ax.plot([r["l0"] for r in opt], [r["optimised"]["file_bits"] for r in opt], "s", color="C2", ms=5,
                label="file, per-feature steps + RDO")
    sel = results["selected"]
    ax.plot([sel["l0"]], [sel["file_bits"]], "o", ms=13, mfc="none", mec="C3", mew=1.5,
            label=f"MDL choice (D={sel['width']}, k={sel['k']})")
    if results.get("pca"):
        p = results["pca"]
        ax.axhline(p["file_bits"], color="0.5", ls=":", label=f"PCA, {p['components']} components (dense)")
    _axis_l0(ax)
    ax.set_ylabel("description length (bits / sample)")
    ax.set_title(f"DL at test MSE <= {results['config']['tol']:g}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, DPI)


def plot_alive_vs_l0(results: dict, path: str | Path) -> Path:
    """Figure 2B: alive features against L0, the width beside for reference."""
    rows = _curve(results)
    l0 = [r["l0"] for r in rows]
    fig = Figure(figsize=(5.6, 3.8))
    ax = fig.subplots()
    ax.plot(l0, [r["alive"] for r in rows], "o-", label="alive features")
    for r in rows:
        ax.annotate(f"D={r['width']}", (r["l0"], r["alive"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.plot(l0, [r["width"] for r in rows], "s:", color="0.6", label="width D")
    sel = results["selected"]
    ax.axvline(sel["l0"], color="C3", lw=0.8, ls="--", label="MDL choice")
    _axis_l0(ax)
    ax.set_yscale("log")
    ax.set_ylabel("features")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, DPI)


def features_at_percentiles(density: np.ndarray, percentiles=PERCENTILES, per_percentile: int = 2) -> list[list[int]]:
    """For each percentile q, the ``per_percentile`` alive features (density > 0) whose density is
    nearest the q-th percentile of the alive features' densities (nearest first)."""
    alive = np.flatnonzero(density > 0)
    if len(alive) == 0:
        return [[] for _ in percentiles]
    out = []
    for q in percentiles:
        target = np.percentile(density[alive], q)
        order = np.argsort(np.abs(density[alive] - target), kind="stable")
        out.append([int(f) for f in alive[order[:per_percentile]]])
    return out


def plot_feature_grid(panels: list[tuple[str, np.ndarray, np.ndarray]], image_shape: tuple[int, int],
                      path: str | Path, per_percentile: int = 2) -> Path:
    """Figure 2C: one row per (label, W_dec [D, d_in], density [D]); columns are the density
    percentiles, ``per_percentile`` decoder rows each, shown as images (red positive, blue negative)."""
    cols = len(PERCENTILES) * per_percentile
    fig = Figure(figsize=(0.95 * cols, 1.2 * len(panels) + 0.3))
    axes = fig.subplots(len(panels), cols, squeeze=False)
    for i, (label, w_dec, density) in enumerate(panels):
        picks = features_at_percentiles(density, PERCENTILES, per_percentile)
        for j, (q, feats) in enumerate(zip(PERCENTILES, picks)):
            for s in range(per_percentile):
                ax = axes[i, j * per_percentile + s]
                ax.set_xticks([])
                ax.set_yticks([])
                if s < len(feats):
                    img = w_dec[feats[s]].reshape(image_shape)
                    lim = float(np.abs(img).max()) or 1.0
                    ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
                    ax.set_title(f"p{q} {100 * density[feats[s]]:.1f}%", fontsize=6)
        axes[i, 0].set_ylabel(label, fontsize=7)
    fig.tight_layout(pad=0.3)
    return save_figure(fig, path, DPI)
