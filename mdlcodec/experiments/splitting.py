"""The paper's Figure 3 (feature splitting), measured with the real codec.

Data. Booleans A and B with P(A) = P(B) = p and Pearson correlation rho, so P(A and B) = p11 =
p^2 + rho p (1 - p) (``theory.splitting_joint``). A sample is x = A a + B b in R^2 with the unit
directions a = (1, 0), b = (0, 1): magnitudes are fixed at 1, so only activity carries
information. n samples hold each of the four patterns (A, B) in exactly round(n P(pattern)) copies
(the (1, 0) and (0, 1) counts equal; (0, 0) takes the rest), in a seeded random order: the
empirical distribution is the stated one, so measured bits compare with the formula without
sampling noise. The entropy model is fit on a training set drawn the same way (another order).

Dictionaries, each an mdlcodec ``Codec`` whose encoder maps x to that dictionary's latents exactly
and whose decoder rebuilds x exactly (up to float32 rounding):
- unsplit {A, B}: W_dec rows a, b; latents (A, B); step 1, so every active latent is bin 1;
- split {A&~B, B&~A, A&B}: W_dec rows a, b, (a + b)/sqrt(2); latents (A&~B, B&~A, sqrt(2) A&B);
  steps (1, 1, sqrt(2)), again bin 1 for every active latent.
The codec codes each feature's activity independently (``occupancy.py``), exactly the paper's
per-feature DL; a value costs -log2((c + 1)/(c + 2)) bits for a feature active c times in training
(its one-bin table against the escape symbol), a few thousandths of a bit here, and is counted.

Measured: payload bits per sample = 32 * (ANS words in the file) / n, and the whole file's bits
per sample (header and chunk framing included, a fixed ~400 bytes); beside them the cross-entropy
of the coded symbols under the fitted tables (their ideal code length, what the coder is built to
reach), the formula ``theory.feature_splitting_dl`` (bits_per_value 0), and the true entropy of the
source, H(A, B), below which no file may go. Over a (p, rho) grid, the sign of DL_split - DL_unsplit
is the phase diagram, drawn under ``theory.splitting_phase_boundary``.

Both dictionaries' files reach their cross-entropy: format version 3 codes each sample's activity as
one occupancy pattern of its two or three features (``occupancy.py``), decoded first. (Version 2
coded the split dictionary's "is the right leaf active, given the left one is" last, never true for
exclusive features, and since constriction's ANS coder starts from an empty state that symbol 0
leaves unchanged, its files came out shorter than the cross-entropy by about n P(A and not B)
(-log2(1 - P(A and not B))); ``Codec.encode(..., version=2)`` still writes such files.) The file
stays above the source's entropy H(A, B). Both boundaries are reported: from the files, and from the
cross-entropies.
"""

from __future__ import annotations

import numpy as np

from mdlcodec.codec import Codec
from mdlcodec.core.atomic import write_text
from mdlcodec.experiments import boolean_features
from mdlcodec.experiments.boolean_features import (
    Measured,
    exact_patterns,
    make_out_dir,
    measure_codec,
    measure_grid,
)
from mdlcodec.theory import (
    entropy_bits,
    feature_splitting_dl,
    splitting_joint,
    splitting_phase_boundary,
)

SQRT2 = float(np.float32(np.sqrt(2.0)))
DIRECTIONS = np.eye(2, dtype=np.float32)  # a, b


def sample_booleans(p: float, rho: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A, B as bool [n] with exactly round(n p11) (1,1), round(n (p - p11)) of each of (1,0) and
    (0,1), the rest (0,0), in a random order from ``seed``. ValueError for rho out of range for p."""
    j = splitting_joint(p, rho)
    n11 = int(round(n * float(j["p11"])))
    n10 = int(round(n * float(j["p10"])))
    if 2 * n10 + n11 > n:
        raise ValueError(f"n = {n} is too small for p = {p}, rho = {rho}")
    ab = exact_patterns([[1, 1], [1, 0], [0, 1]], [n11, n10, n10], n, seed)
    return ab[:, 0], ab[:, 1]


def activations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x = A a + B b, [n, 2] float32."""
    return (a[:, None] * DIRECTIONS[0] + b[:, None] * DIRECTIONS[1]).astype(np.float32)


def _unsplit_encoder(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float32) @ DIRECTIONS.T).astype(np.float32)


def _split_encoder(x: np.ndarray) -> np.ndarray:
    c = np.asarray(x, np.float32) @ DIRECTIONS.T
    a, b = c[:, 0] > 0.5, c[:, 1] > 0.5
    return np.stack([a & ~b, b & ~a, (a & b) * SQRT2], axis=1).astype(np.float32)


DICTIONARIES = {
    "unsplit": (DIRECTIONS, np.array([1.0, 1.0], np.float32), _unsplit_encoder),
    "split": (np.vstack([DIRECTIONS, (DIRECTIONS[0] + DIRECTIONS[1]) / SQRT2]).astype(np.float32),
              np.array([1.0, 1.0, SQRT2], np.float32), _split_encoder),
}
"""name -> (W_dec [D, 2], quantiser steps [D], encoder x [n, 2] -> latents [n, D])."""


def dictionary_codec(name: str, train_x: np.ndarray) -> Codec:
    """The codec of dictionary ``name`` ("unsplit" or "split"), entropy model fit on train_x [n, 2]."""
    w, step, enc = DICTIONARIES[name]
    return boolean_features.dictionary_codec(w, step, enc, train_x)


def measure_dictionary(name: str, train_x: np.ndarray, test_x: np.ndarray) -> Measured:
    """Encode test_x [n, 2] (one chunk) with dictionary ``name``'s codec and decode it back."""
    return measure_codec(dictionary_codec(name, train_x), test_x)


def splitting_point(p: float, rho: float, n: int = 50_000, seed: int = 0) -> dict:
    """Both dictionaries at one (p, rho): measured bits per sample beside the formulas."""
    train_x = activations(*sample_booleans(p, rho, n, seed))
    test_x = activations(*sample_booleans(p, rho, n, seed + 1))
    f = feature_splitting_dl(p, rho)
    j = splitting_joint(p, rho)
    out = {"p": p, "rho": rho, "n": n,
           "source_entropy": float(entropy_bits(np.array([j["p11"], j["p10"], j["p01"], j["p00"]], float))),
           "formula": {"unsplit": float(f.unsplit_dl), "split": float(f.split_dl)},
           "formula_l0": {"unsplit": float(f.unsplit_l0), "split": float(f.split_l0)}}
    for name in DICTIONARIES:
        out[name] = measure_dictionary(name, train_x, test_x).__dict__
    out["measured_shorter"] = "split" if out["split"]["payload_bits"] < out["unsplit"]["payload_bits"] else "unsplit"
    out["cross_entropy_shorter"] = "split" if out["split"]["cross_entropy_bits"] < out["unsplit"]["cross_entropy_bits"] else "unsplit"
    out["formula_shorter"] = "split" if f.split_dl < f.unsplit_dl else "unsplit"
    return out


def _measured_boundary(ps: np.ndarray, rhos: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """Per p, the rho where measured DL_split - DL_unsplit first turns <= 0 (linear interpolation
    between grid rows; NaN if it never does)."""
    out = np.full(len(ps), np.nan)
    for i in range(len(ps)):
        col = diff[:, i]
        neg = np.flatnonzero(col <= 0)
        if len(neg) == 0:
            continue
        j = neg[0]
        if j == 0:
            out[i] = rhos[0]
        else:
            r0, r1, d0, d1 = rhos[j - 1], rhos[j], col[j - 1], col[j]
            out[i] = r0 + (r1 - r0) * d0 / (d0 - d1)
    return out


def phase_diagram(ps, rhos, n: int = 20_000, seed: int = 0) -> dict:
    """Measure both dictionaries on every (p, rho) of the grid. Returns the grid; per dictionary the
    file payload, the cross-entropy and the formula (bits per sample, arrays [len(rhos), len(ps)]);
    the boundary per p from the files, from the cross-entropies and from theory; and their agreement."""
    ps, rhos = np.asarray(ps, float), np.asarray(rhos, float)
    grids, entropy, exact = measure_grid(lambda p, rho: splitting_point(p, rho, n, seed), ps, rhos, DICTIONARIES)
    analytic = np.asarray(splitting_phase_boundary(ps), float)
    out = {"n": n, "seed": seed, "p": ps.tolist(), "rho": rhos.tolist(), "all_decoded_exactly": bool(exact),
           "source_entropy": entropy.tolist(), "boundary_analytic": analytic.tolist()}
    form_diff = grids["formula"]["split"] - grids["formula"]["unsplit"]
    for g, v in grids.items():
        out[f"{g}_bits"] = {k: a.tolist() for k, a in v.items()}
    for g in ("payload", "cross_entropy"):
        diff = grids[g]["split"] - grids[g]["unsplit"]
        boundary = _measured_boundary(ps, rhos, diff)
        rel = np.concatenate([np.abs(grids[g][k] / grids["formula"][k] - 1).ravel() for k in DICTIONARIES])
        out[g] = {"boundary": boundary.tolist(), "max_boundary_gap": float(np.nanmax(np.abs(boundary - analytic))),
                  "max_relative_error": {k: float(np.nanmax(np.abs(grids[g][k] / grids["formula"][k] - 1)))
                                         for k in DICTIONARIES},
                  "mean_relative_error": float(np.nanmean(rel)),
                  "cells_same_verdict_as_formula": float((np.sign(diff) == np.sign(form_diff)).mean())}
    out["payload_above_source_entropy"] = bool(np.all(grids["payload"]["split"] >= entropy)
                                               and np.all(grids["payload"]["unsplit"] >= entropy))
    return out


def plot_phase_diagram(result: dict, path) -> None:
    """Left: DL_split - DL_unsplit measured from the files over (p, rho), with the boundary from the
    files, from the cross-entropies and from theory; right: file and cross-entropy bits per sample against
    the formula for every cell and both dictionaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    from mdlcodec.core.atomic import save_figure

    ps, rhos = np.array(result["p"]), np.array(result["rho"])
    pay = {k: np.array(v) for k, v in result["payload_bits"].items()}
    ideal = {k: np.array(v) for k, v in result["cross_entropy_bits"].items()}
    form = {k: np.array(v) for k, v in result["formula_bits"].items()}
    diff = pay["split"] - pay["unsplit"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=110, gridspec_kw={"width_ratios": [1.3, 1]})
    lim = float(np.nanmax(np.abs(diff))) or 1.0
    im = ax.pcolormesh(ps, rhos, diff, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), shading="nearest")
    fig.colorbar(im, ax=ax, label="file DL_split - DL_unsplit (bits/sample)")
    ax.contour(ps, rhos, diff, levels=[0.0], colors="k", linewidths=1.3)
    fine = np.linspace(ps.min(), ps.max(), 400)
    ax.plot(fine, splitting_phase_boundary(fine), "-", color="gold", lw=3, label="analytic boundary (theory)")
    ax.contour(ps, rhos, ideal["split"] - ideal["unsplit"], levels=[0.0], colors="tab:green", linewidths=1.5,
               linestyles="--")
    ax.plot([], [], "--", color="tab:green", lw=1.5, label="boundary from the cross-entropies")
    ax.plot([], [], "k-", lw=1.3, label="boundary from file sizes")
    ax.set_xlabel("p = P(A) = P(B)")
    ax.set_ylabel("correlation rho")
    ax.set_title(f"Feature splitting, real codec (blue: split shorter; n = {result['n']:,} per cell)", fontsize=9)
    leg = ax.legend(fontsize=7, loc="upper left", facecolor="0.75")
    leg.get_frame().set_alpha(0.9)
    for k, c in (("unsplit", "tab:blue"), ("split", "tab:red")):
        ax2.plot(form[k].ravel(), pay[k].ravel(), ".", ms=3, color=c, label=f"{k}: file payload")
        ax2.plot(form[k].ravel(), ideal[k].ravel(), "x", ms=3, color=c, alpha=0.5, label=f"{k}: cross-entropy")
    top = max(float(np.nanmax(form["unsplit"])), float(np.nanmax(form["split"])))
    ax2.plot([0, top], [0, top], "k-", lw=0.8)
    ax2.set_xlabel("formula DL (bits/sample)")
    ax2.set_ylabel("measured (bits/sample)")
    err = result["cross_entropy"]["max_relative_error"]
    ax2.set_title(f"cross-entropy vs formula: max error {max(err.values()):.2%}; file vs formula: max "
                  f"{max(result['payload']['max_relative_error'].values()):.1%}", fontsize=8)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


TABLE_POINTS = ((0.05, 0.0), (0.1, 0.5), (0.2, 0.2), (0.2, 0.6), (0.3, 0.9), (0.5, 0.5), (0.5, 0.8))
"""(p, rho) points of the splitting table: both regimes, and points near the boundary."""


def markdown_points(points: list[dict]) -> str:
    """One table row per (p, rho): formula, cross-entropy and payload bits per sample of each dictionary,
    the source entropy, and which dictionary is shorter by the formula and by the files."""
    lines = ["| p | rho | unsplit: formula | cross-entropy | payload | split: formula | cross-entropy | payload | H(A,B) "
             "| shorter (formula) | shorter (file) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in points:
        u, s = r["unsplit"], r["split"]
        lines.append(f"| {r['p']:g} | {r['rho']:g} | {r['formula']['unsplit']:.4f} | {u['cross_entropy_bits']:.4f} "
                     f"| {u['payload_bits']:.4f} | {r['formula']['split']:.4f} | {s['cross_entropy_bits']:.4f} "
                     f"| {s['payload_bits']:.4f} | {r['source_entropy']:.4f} | {r['formula_shorter']} "
                     f"| {r['measured_shorter']} |")
    return "\n".join(lines) + "\n"


def write_splitting(diagram: dict, points: list[dict], out_dir) -> dict:
    """splitting.json (grid and points), splitting.md (the points table and agreement figures) and
    splitting.png (the phase diagram) in out_dir (created if missing), each written atomically."""
    import json

    out = make_out_dir(out_dir)
    paths = {"json": out / "splitting.json", "markdown": out / "splitting.md", "png": out / "splitting.png"}
    write_text(paths["json"], json.dumps({"grid": diagram, "points": points}, indent=1) + "\n")
    d = diagram
    summary = (f"Grid: {len(d['p'])} x {len(d['rho'])} (p, rho) cells, n = {d['n']:,} samples per cell and "
               f"dictionary. Cross-entropy vs formula: max relative error "
               f"{max(d['cross_entropy']['max_relative_error'].values()):.2%}, same verdict in "
               f"{d['cross_entropy']['cells_same_verdict_as_formula']:.0%} of cells, boundary within "
               f"{d['cross_entropy']['max_boundary_gap']:.3f} in rho of theory's. File payload vs formula: max relative "
               f"error {d['payload']['max_relative_error']['unsplit']:.2%} (unsplit), "
               f"{d['payload']['max_relative_error']['split']:.2%} (split), same verdict in "
               f"{d['payload']['cells_same_verdict_as_formula']:.0%} of cells, boundary within "
               f"{d['payload']['max_boundary_gap']:.3f} in rho. Every file decoded to its latents exactly: "
               f"{d['all_decoded_exactly']}; every file at or above the source entropy H(A,B): "
               f"{d['payload_above_source_entropy']}.\n")
    write_text(paths["markdown"], "Bits per sample.\n\n" + markdown_points(points) + "\n" + summary)
    plot_phase_diagram(diagram, paths["png"])
    return paths
