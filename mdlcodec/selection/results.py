"""Writing a selection run: results.json (everything to redo each row), results.csv (the table)
and the figures, each written atomically into RUN_DIR."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mdlcodec.core.atomic import write_text
from mdlcodec.selection import plots
from mdlcodec.selection.pipeline import Selected

CSV_COLUMNS = ("method", "width", "k", "calibrated", "l0", "quantised_l0", "test_mse", "quantised_test_mse",
               "alive", "step", "bits_per_value", "cross_entropy_bits", "cross_entropy_activity_bits",
               "cross_entropy_values_bits", "payload_bits", "file_bits", "payload_over_cross_entropy", "decoder_bits",
               "eq1_bound", "selected", "optimised_payload_bits", "optimised_file_bits", "optimised_test_mse",
               "best_file_bits")
"""Bits are per test sample except decoder_bits (the whole float32 decoder), named as in the README:
cross_entropy_bits is the ideal code length of the quantised test latents under the tables,
payload_bits the .mdlc file's coded chunks, file_bits its every byte;
calibrated: the smallest k meeting tol at its width (other rows are larger k that the calibration
trained and that also meet tol); selected: the eps-MDL-optimal SAE; with select --rdo, for each
width's shortest-file SAE, optimised_*: its test split coded with per-feature steps and RDO
(quantised test MSE beside), and best_file_bits the shorter valid file (empty on other rows)."""


def table_rows(results: dict) -> list[dict]:
    """One flat dict per row (SAEs by width and k, then PCA), with the CSV_COLUMNS keys."""
    sel = results["selected"]
    rows = []
    saes = sorted(results["rows"], key=lambda r: (r["width"], r["k"] or 0))
    for r in saes + ([results["pca"]] if results.get("pca") else []):
        flat = {c: r.get(c) for c in CSV_COLUMNS}
        if "cross_entropy_bits" in r:
            ce = r["cross_entropy_bits"]
            flat.update(cross_entropy_bits=ce["total"], cross_entropy_activity_bits=ce["activity"],
                        cross_entropy_values_bits=ce["values"])
        flat["selected"] = int(r["method"] != "pca" and r.get("hash") == sel["hash"])
        if "optimised" in r:
            o = r["optimised"]
            flat.update(optimised_payload_bits=o["payload_bits"], optimised_file_bits=o["file_bits"],
                        optimised_test_mse=o["mse"])
        if r["method"] == "sae":
            flat["calibrated"] = int(r["calibrated"])
        rows.append(flat)
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def csv_text(results: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in table_rows(results):
        w.writerow([_fmt(r[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def markdown_table(results: dict, calibrated_only: bool = True) -> str:
    """The table for a README: bits per test sample; by default one line per width (its calibrated
    k), the selected SAE wherever it is, and PCA. With select --rdo, also each width's shortest-file
    SAE, and columns of its optimised encoding (per-feature steps and RDO) beside the plain payload
    and file ("-" on other rows)."""
    rows = table_rows(results)
    opt = any(r["optimised_file_bits"] is not None for r in rows)
    head = ("| method | width | k | L0 | test MSE | quantised MSE | alive | bits/value | cross-entropy | payload "
            "| payload/cross-entropy | file | decoder bits |")
    if opt:
        head = head.replace("| file |", "| file | payload (optimised) | file (optimised) | quantised MSE (optimised) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    blank = " | | |" if opt else ""
    for r in rows:
        if calibrated_only and r["method"] == "sae" and not (r["calibrated"] or r["selected"]
                                                             or r["optimised_file_bits"] is not None):
            continue
        if r["k"] is None and r["method"] == "sae":
            lines.append(f"| SAE | {r['width']} | - | - | no k meets tol | | | | | | | | |{blank}")
            continue
        if r["method"] == "sae-mdl" and r["l0"] is None:
            lines.append(f"| SAE, objective mdl | {r['width']} | - | - | misses tol | | | | | | | | |{blank}")
            continue
        name = {"sae": "SAE", "sae-mdl": "SAE, objective mdl"}.get(r["method"], "PCA (dense)")
        name = f"**{name} (MDL)**" if r["selected"] else name
        k = r["k"] if r["k"] is not None else "-"
        mse = f"{r['test_mse']:.5f}" if r["test_mse"] is not None else "-"
        lines.append(f"| {name} | {r['width']} | {k} | {r['l0']:.1f} | {mse} | {r['quantised_test_mse']:.5f} | "
                     f"{r['alive']} | {r['bits_per_value']:.2f} | {r['cross_entropy_bits']:.2f} | "
                     f"{r['payload_bits']:.2f} | {r['payload_bits'] / r['cross_entropy_bits']:.5f} | "
                     f"{r['file_bits']:.1f} |{_optimised_cells(r) if opt else ''} {r['decoder_bits']:,} |")
    return "\n".join(lines) + "\n"


def _optimised_cells(r: dict) -> str:
    """' payload | file | MSE |' of the optimised encoding, the shorter file in bold; '-' without one."""
    if r["optimised_file_bits"] is None:
        return " - | - | - |"
    f = f"{r['optimised_file_bits']:.1f}"
    f = f"**{f}**" if r["best_file_bits"] is not None and r["optimised_file_bits"] == r["best_file_bits"] < r["file_bits"] else f
    return f" {r['optimised_payload_bits']:.2f} | {f} | {r['optimised_test_mse']:.5f} |"


def write_results(results: dict, extra: Selected, run_dir: str | Path, image_shape: tuple[int, int] | None = None,
                  plot: bool = True) -> dict[str, Path]:
    """results.json, results.csv, results.md and (if plot) fig2a_dl_vs_l0.png, fig2b_alive_vs_l0.png
    and, for image data, fig2c_features.png in run_dir. Returns name -> path."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_text(out / "results.json", json.dumps(results, indent=1) + "\n"),
             "csv": write_text(out / "results.csv", csv_text(results)),
             "md": write_text(out / "results.md", markdown_table(results))}
    if not plot:
        return paths
    paths["fig2a"] = plots.plot_dl_vs_l0(results, out / "fig2a_dl_vs_l0.png")
    paths["fig2b"] = plots.plot_alive_vs_l0(results, out / "fig2b_alive_vs_l0.png")
    if image_shape is not None:
        curve = sorted((r for r in results["rows"] if r["k"] is not None and r["calibrated"]), key=lambda r: r["l0"])
        sel = next(r for r in results["rows"] if r.get("hash") == results["selected"]["hash"])
        picks = [("densest", curve[-1]), ("MDL-optimal", sel), ("sparsest", curve[0])]
        panels = [(f"{name}\nD={r['width']}, k={r['k']}\nL0={r['l0']:.1f}", extra.decoders[r["hash"]],
                   extra.densities[r["hash"]]) for name, r in picks]
        paths["fig2c"] = plots.plot_feature_grid(panels, tuple(image_shape), out / "fig2c_features.png")
    return paths
