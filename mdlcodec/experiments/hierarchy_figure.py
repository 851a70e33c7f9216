"""The paper's Figure 5 (hierarchical features), measured with the real codec.

Data. "Animal" A and "Bird" B, B implies A: P(A) = p_A, P(B | A) = p_B|A, P(B) = p_A p_B|A. A
sample is x = A a + B b in R^2 with unit directions a = (1, 0) ("animal") and b = (0, 1) ("what
a bird adds"); magnitudes are fixed at 1, so only activity carries information. n samples hold the
patterns (A, B) = (1, 1), (1, 0) in exactly round(n p_B) and round(n p_A) - round(n p_B) copies,
the rest (0, 0), in a seeded random order (``boolean_features.exact_patterns``): the empirical
distribution is the stated one, so measured bits compare with the formulas without sampling
noise. The entropy model is fit on a training set drawn the same way (another order).

Dictionaries, each an mdlcodec ``Codec`` whose encoder maps x to its latents exactly and whose
decoder rebuilds x exactly (up to float32 rounding):
- flat {A&~B, B}: mutually exclusive features ("generic animal", "bird"); W_dec rows a and
  (a + b)/sqrt(2), latents (A&~B, sqrt(2) B), steps (1, sqrt(2)): every active latent is bin 1. The
  codec codes the two activities independently: DL = H(p_A - p_B) + H(p_B).
- tree {A, B}: W_dec rows a, b; latents (A, B), steps 1; B is a child of A in a ``Hierarchy`` of
  kind "tree" (parents [-1, 0], counted with ``Hierarchy.count``), so B's activity is coded only
  when A fired (``activity.py``): DL = H(p_A) + p_A H(p_B|A), the joint entropy of (A, B).
Each active latent's value costs -log2((c + 1)/(c + 2)) bits for a feature active c times in
training (its one-bin table against the escape symbol), a few thousandths of a bit here, counted.

Measured: payload bits per sample = 32 * (ANS words in the file) / n and the whole file's bits per
sample (header and chunk framing included); beside them the cross-entropy of the coded symbols
under the fitted model (their cross-entropy), the formula ``theory.hierarchy_dl`` (bits_per_value
0), and the source's entropy H(A, B) (which is the tree's formula). The saving DL_flat - DL_tree is
drawn over a (p_A, p_B|A) grid; the paper's point is that it is never negative.

The files reach their cross-entropy: format version 3 codes each sample's activity as one
occupancy pattern of the two features (``occupancy.py``), decoded first. (Version 2 coded the flat
dictionary's "is B active, given A&~B is" last, and since constriction's ANS coder starts empty its
file came out shorter than its cross-entropy by about P(A&~B) (-log2(1 - P(B))) bits per sample;
``Codec.encode(..., version=2)`` still writes such files.) Every file stays above the source
entropy, which the tree's file reaches.
"""

from __future__ import annotations

import json

import numpy as np

from mdlcodec.codec import Codec
from mdlcodec.core.atomic import write_text
from mdlcodec.experiments.boolean_features import (
    dictionary_codec,
    exact_patterns,
    make_out_dir,
    measure_codec,
    measure_grid,
)
from mdlcodec.theory import entropy_bits, hierarchy_dl

SQRT2 = float(np.float32(np.sqrt(2.0)))
DIRECTIONS = np.eye(2, dtype=np.float32)  # a ("animal"), b ("what a bird adds")
NAMES = ("flat", "tree")


def _check_probabilities(p_a: float, p_b_given_a: float) -> None:
    for name, v in (("p_A", p_a), ("p_B|A", p_b_given_a)):
        if not (np.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"{name} must be a probability in [0, 1], got {v}")


def sample_animals(p_a: float, p_b_given_a: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A, B as bool [n]: exactly round(n p_A p_B|A) birds (A and B), round(n p_A) - that many other
    animals (A, not B), the rest neither, in a random order from ``seed``. B implies A."""
    _check_probabilities(p_a, p_b_given_a)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    n_a = int(round(n * p_a))
    n_b = int(round(n * p_a * p_b_given_a))
    ab = exact_patterns([[1, 1], [1, 0]], [n_b, n_a - n_b], n, seed)
    return ab[:, 0], ab[:, 1]


def activations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x = A a + B b, [n, 2] float32."""
    return (a[:, None] * DIRECTIONS[0] + b[:, None] * DIRECTIONS[1]).astype(np.float32)


def _flat_encoder(x: np.ndarray) -> np.ndarray:
    c = np.asarray(x, np.float32) @ DIRECTIONS.T
    a, b = c[:, 0] > 0.5, c[:, 1] > 0.5
    return np.stack([a & ~b, b * SQRT2], axis=1).astype(np.float32)


def _tree_encoder(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, np.float32) @ DIRECTIONS.T).astype(np.float32)


DICTIONARIES = {
    "flat": (np.vstack([DIRECTIONS[0], (DIRECTIONS[0] + DIRECTIONS[1]) / SQRT2]).astype(np.float32),
             np.array([1.0, SQRT2], np.float32), _flat_encoder, None),
    "tree": (DIRECTIONS, np.array([1.0, 1.0], np.float32), _tree_encoder, np.array([-1, 0], np.int64)),
}
"""name -> (W_dec [2, 2], quantiser steps [2], encoder x [n, 2] -> latents [n, 2], parents or None)."""


def hierarchy_codec(name: str, train_x: np.ndarray) -> Codec:
    """The codec of dictionary ``name`` ("flat" or "tree"), entropy model fit on train_x [n, 2]."""
    w, step, enc, parents = DICTIONARIES[name]
    return dictionary_codec(w, step, enc, train_x, parents, "tree")


def hierarchy_point(p_a: float, p_b_given_a: float, n: int = 50_000, seed: int = 0) -> dict:
    """Both dictionaries at one (p_A, p_B|A): measured bits per sample beside the formulas."""
    train_x = activations(*sample_animals(p_a, p_b_given_a, n, seed))
    test_x = activations(*sample_animals(p_a, p_b_given_a, n, seed + 1))
    f = hierarchy_dl(p_a, p_b_given_a)
    p_b = p_a * p_b_given_a
    out = {"p_a": p_a, "p_b_given_a": p_b_given_a, "p_b": p_b, "n": n,
           "source_entropy": float(entropy_bits(np.array([p_b, p_a - p_b, 1.0 - p_a], float))),
           "formula": {"flat": float(f.flat_dl), "tree": float(f.tree_dl)},
           "formula_l0": {"flat": float(f.flat_l0), "tree": float(f.tree_l0)}}
    for name in NAMES:
        out[name] = measure_codec(hierarchy_codec(name, train_x), test_x).__dict__
    out["saving"] = {"formula": out["formula"]["flat"] - out["formula"]["tree"],
                     "cross_entropy": out["flat"]["cross_entropy_bits"] - out["tree"]["cross_entropy_bits"],
                     "payload": out["flat"]["payload_bits"] - out["tree"]["payload_bits"]}
    return out


def phase_diagram(p_as, p_bs, n: int = 20_000, seed: int = 0) -> dict:
    """Measure both dictionaries on every (p_A, p_B|A) of the grid. Returns the grid; per dictionary
    the file payload, the cross-entropy and the formula (bits per sample, arrays
    [len(p_bs), len(p_as)]); the source entropy; relative errors against the formulas; and whether
    the tree was never longer than flat (by the formula, the cross-entropies and the files)."""
    p_as, p_bs = np.asarray(p_as, float), np.asarray(p_bs, float)
    grids, entropy, exact = measure_grid(lambda pa, q: hierarchy_point(pa, q, n, seed), p_as, p_bs, NAMES)
    out = {"n": n, "seed": seed, "p_a": p_as.tolist(), "p_b_given_a": p_bs.tolist(),
           "all_decoded_exactly": bool(exact), "source_entropy": entropy.tolist()}
    for g, v in grids.items():
        out[f"{g}_bits"] = {k: a.tolist() for k, a in v.items()}
    out["formula"] = {"tree_never_longer": bool(np.all(grids["formula"]["tree"] <= grids["formula"]["flat"] + 1e-12)),
                      "min_saving": float(np.min(grids["formula"]["flat"] - grids["formula"]["tree"]))}
    for g in ("payload", "cross_entropy"):
        saving = grids[g]["flat"] - grids[g]["tree"]
        rel = {k: np.abs(grids[g][k] / grids["formula"][k] - 1) for k in NAMES}
        out[g] = {"max_relative_error": {k: float(np.nanmax(r)) for k, r in rel.items()},
                  "mean_relative_error": float(np.nanmean(np.concatenate([r.ravel() for r in rel.values()]))),
                  "tree_never_longer": bool(np.all(saving >= 0)),
                  "cells_tree_not_longer": float(np.mean(saving >= 0)),
                  "min_saving": float(np.min(saving)), "max_saving": float(np.max(saving)),
                  "max_tree_excess_bits": float(max(0.0, -np.min(saving)) * n)}
    out["payload_above_source_entropy"] = {k: bool(np.all(grids["payload"][k] >= entropy - 1e-9)) for k in NAMES}
    return out


def plot_phase_diagram(result: dict, path) -> None:
    """Left: DL_flat - DL_tree from the cross-entropies over (p_A, p_B|A), with the formula's
    contours (white) and the measured ones (dashed) at the same levels; middle: the same from the
    file payloads, cells where the tree's file is longer marked; right: file and cross-entropy bits per sample against the formula for every
    cell and both dictionaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mdlcodec.core.atomic import save_figure

    pa, q = np.array(result["p_a"]), np.array(result["p_b_given_a"])
    pay = {k: np.array(v) for k, v in result["payload_bits"].items()}
    ideal = {k: np.array(v) for k, v in result["cross_entropy_bits"].items()}
    form = {k: np.array(v) for k, v in result["formula_bits"].items()}
    savings = {"cross-entropies": ideal["flat"] - ideal["tree"], "file payloads": pay["flat"] - pay["tree"]}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), dpi=110, gridspec_kw={"width_ratios": [1.15, 1.15, 1]})
    top = max(max(float(np.nanmax(v)) for v in savings.values()), 1e-9)
    bottom = min(0.0, min(float(np.nanmin(v)) for v in savings.values()))
    fine_a, fine_q = np.meshgrid(np.linspace(pa.min(), pa.max(), 200), np.linspace(q.min(), q.max(), 200))
    fine = hierarchy_dl(fine_a, fine_q)
    levels = [lv for lv in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8) if lv < top]
    for ax, (what, saving) in zip(axes[:2], savings.items()):
        im = ax.pcolormesh(pa, q, saving, cmap="viridis", vmin=bottom, vmax=top, shading="nearest")
        fig.colorbar(im, ax=ax, label="DL_flat - DL_tree (bits/sample)")
        if levels:
            cs = ax.contour(fine_a, fine_q, fine.flat_dl - fine.tree_dl, levels=levels, colors="w", linewidths=1.0)
            ax.clabel(cs, fontsize=6, fmt="%.2g")
            ax.contour(pa, q, saving, levels=levels, colors="k", linewidths=0.9, linestyles="--")
        ax.plot([], [], "-", color="w", lw=1.0, label="saving by the formula")
        ax.plot([], [], "k--", lw=0.9, label=f"saving from the {what}")
        if np.any(saving < 0):
            neg = np.argwhere(saving < 0)
            words = -float(np.min(saving)) * result["n"] / 32
            ax.plot(pa[neg[:, 1]], q[neg[:, 0]], "rx", ms=5, clip_on=False,
                    label=f"tree longer, by at most {words:.3g} x 32 bits")
        ax.set_xlabel("p_A = P(Animal)")
        ax.set_ylabel("p_B|A = P(Bird | Animal)")
        ax.set_title(f"Tree's saving over flat, from the {what}\n(real codec, n = {result['n']:,} per cell)",
                     fontsize=9)
        leg = ax.legend(fontsize=7, loc="lower left", facecolor="0.6")
        leg.get_frame().set_alpha(0.9)
    ax2 = axes[2]
    for k, c in (("flat", "tab:red"), ("tree", "tab:blue")):
        ax2.plot(form[k].ravel(), pay[k].ravel(), ".", ms=3, color=c, label=f"{k}: file payload")
        ax2.plot(form[k].ravel(), ideal[k].ravel(), "x", ms=3, color=c, alpha=0.5, label=f"{k}: cross-entropy")
    hi = max(float(np.nanmax(form["flat"])), float(np.nanmax(form["tree"])))
    ax2.plot([0, hi], [0, hi], "k-", lw=0.8)
    ax2.set_xlabel("formula DL (bits/sample)")
    ax2.set_ylabel("measured (bits/sample)")
    ax2.set_title(f"cross-entropy vs formula: max error {max(result['cross_entropy']['max_relative_error'].values()):.2%}; "
                  f"file vs formula: max {result['payload']['max_relative_error']['tree']:.1%} (tree),\n"
                  f"{result['payload']['max_relative_error']['flat']:.1%} (flat)", fontsize=8)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


TABLE_POINTS = ((0.05, 0.5), (0.1, 0.1), (0.2, 0.9), (0.3, 0.5), (0.5, 0.2), (0.5, 0.5), (0.8, 0.5), (0.9, 0.9))
"""(p_A, p_B|A) points of the table: rare and common animals, rare and common birds among them."""


def markdown_points(points: list[dict]) -> str:
    """One table row per (p_A, p_B|A): formula, cross-entropy and payload bits per sample of each
    dictionary, the source entropy, and the tree's saving by the formula and by the files."""
    lines = ["| p_A | p_B\\|A | flat: formula | cross-entropy | payload | tree: formula | cross-entropy | payload | H(A,B) "
             "| saving: formula | cross-entropy | payload |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in points:
        f, t, s = r["flat"], r["tree"], r["saving"]
        lines.append(f"| {r['p_a']:g} | {r['p_b_given_a']:g} | {r['formula']['flat']:.4f} | {f['cross_entropy_bits']:.4f} "
                     f"| {f['payload_bits']:.4f} | {r['formula']['tree']:.4f} | {t['cross_entropy_bits']:.4f} "
                     f"| {t['payload_bits']:.4f} | {r['source_entropy']:.4f} | {s['formula']:.4f} "
                     f"| {s['cross_entropy']:.4f} | {s['payload']:.4f} |")
    return "\n".join(lines) + "\n"


def summary(diagram: dict) -> str:
    """The grid's agreement figures in one paragraph."""
    d = diagram
    return (f"Grid: {len(d['p_a'])} x {len(d['p_b_given_a'])} (p_A, p_B|A) cells, n = {d['n']:,} samples per cell "
            f"and dictionary. Cross-entropy vs formula: max relative error "
            f"{d['cross_entropy']['max_relative_error']['flat']:.2%} (flat), {d['cross_entropy']['max_relative_error']['tree']:.2%} "
            f"(tree). File payload vs formula: max relative error {d['payload']['max_relative_error']['flat']:.2%} "
            f"(flat), "
            f"{d['payload']['max_relative_error']['tree']:.2%} (tree). Tree never longer than flat: formula "
            f"{d['formula']['tree_never_longer']}, cross-entropies {d['cross_entropy']['tree_never_longer']}, files "
            f"{d['payload']['tree_never_longer']} (in {d['payload']['cells_tree_not_longer']:.0%} of cells; where longer, "
            f"by at most {d['payload']['max_tree_excess_bits']:.0f} bits in the whole file, "
            f"{d['payload']['max_tree_excess_bits'] / 32:.3g} x the coder's 32-bit word; file "
            f"saving {d['payload']['min_saving']:.4f} to {d['payload']['max_saving']:.4f} bits/sample). Every file decoded "
            f"to its latents exactly: {d['all_decoded_exactly']}; every file at or above the source entropy "
            f"H(A,B): {all(d['payload_above_source_entropy'].values())}.\n")


def write_hierarchy_figure(diagram: dict, points: list[dict], out_dir) -> dict:
    """hierarchy_figure.json (grid and points), hierarchy_figure.md (the points table and agreement
    figures) and hierarchy_figure.png (the phase diagram) in out_dir (created if missing), each
    written atomically."""
    out = make_out_dir(out_dir)
    paths = {k: out / f"hierarchy_figure.{ext}" for k, ext in (("json", "json"), ("markdown", "md"), ("png", "png"))}
    write_text(paths["json"], json.dumps({"grid": diagram, "points": points}, indent=1) + "\n")
    write_text(paths["markdown"], "Bits per sample.\n\n" + markdown_points(points) + "\n" + summary(diagram))
    plot_phase_diagram(diagram, paths["png"])
    return paths
