"""``measure``'s rate-distortion curves over several tolerances: file bits per test sample against
the measured FVU, one line per SAE (dashed: its optimised code, dotted: its Chow-Liu code), PCA's in
grey (matplotlib's object API, no pyplot: PNG files through the Agg canvas, the caller's backend
untouched)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.ticker
from matplotlib.figure import Figure

from mdlcodec.core.atomic import save_figure

DPI = 90


def plot_rate_distortion(result: dict, path: str | Path) -> Path:
    """File bits per test sample (per token) against the quantised test FVU from a ``measure`` result
    (measurement.compare's schema, one point per tolerance met): one solid line per SAE, its optimised
    code (``--rdo``) dashed and its Chow-Liu code (``--chow-liu``) dotted in the same colour, PCA transform coding in grey; the tolerances as
    faint vertical lines. Log FVU axis."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    names = list(dict.fromkeys(r["name"] for r in result["rows"] if r["method"] == "sae"))
    for i, name in enumerate(names):
        rows = sorted((r for r in result["rows"] if r["name"] == name), key=lambda r: r["fvu"])
        ax.plot([r["fvu"] for r in rows], [r["file_bits"] for r in rows], "o-", color=f"C{i}", ms=4,
                label=f"{name} (D={rows[0]['width']}, k={rows[0]['k']})")
        cl = [r for r in rows if r.get("chow_liu")]
        if cl:
            ax.plot([r["fvu"] for r in cl], [r["chow_liu"]["file_bits"] for r in cl], "d:", color=f"C{i}", ms=4,
                    label=f"{name}, Chow-Liu tables")
        opt = sorted((r["optimised"] for r in rows if r.get("optimised")), key=lambda o: o["fvu"])
        if opt:
            ax.plot([o["fvu"] for o in opt], [o["file_bits"] for o in opt], "s--", color=f"C{i}", ms=4,
                    label=f"{name}, optimised (per-feature steps, RDO)")
    pca = sorted((r for r in result["rows"] if r["method"] == "pca"), key=lambda r: r["fvu"])
    if pca:
        ax.plot([r["fvu"] for r in pca], [r["file_bits"] for r in pca], "^-", color="0.45", ms=4,
                label="PCA transform coding")
        for r in pca:
            ax.annotate(f"m={r['width']}", (r["fvu"], r["file_bits"]), textcoords="offset points", xytext=(3, 4),
                        fontsize=6, color="0.45")
    for t in result["tolerances"]:
        if t["max_fvu"] is not None:
            ax.axvline(t["max_fvu"], color="0.85", lw=0.8, zorder=0)
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("FVU of the quantised test reconstruction")
    ax.set_ylabel("file bits per test sample")
    d = result["data"]
    name = d["name"] if len(d["name"]) <= 60 else d["name"][:57] + "..."
    ax.set_title(f"Rate-distortion: {name}\n{d['n_test']:,} test samples, d = {d['d']}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, DPI)
