"""Writing a selection run: results.json (everything to redo each row), results.csv (the table)
and the figures, each written atomically into RUN_DIR."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mdlcodec.core.atomic import atomic_output
from mdlcodec.selection import plots
from mdlcodec.selection.pipeline import Selected

CSV_COLUMNS = ("method", "width", "k", "calibrated", "l0", "quantised_l0", "test_mse", "quantised_test_mse",
               "alive", "step", "bits_per_value", "dl_theory", "dl_theory_activity", "dl_theory_values", "dl_measured",
               "payload_measured", "measured_over_theory", "decoder_bits", "eq1_bound", "selected")
"""Bits are per test sample except decoder_bits (the whole float32 decoder); dl_theory is the
cross-entropy of the quantised test latents under the entropy model, dl_measured the .mdlc file's
size, payload_measured its coded chunks alone, measured_over_theory = payload / theory;
calibrated: the smallest k meeting tol at its width (other rows are larger k that the calibration
trained and that also meet tol); selected: the eps-MDL-optimal SAE."""


def table_rows(results: dict) -> list[dict]:
    """One flat dict per row (SAEs by width and k, then PCA), with the CSV_COLUMNS keys."""
    sel = results["selected"]
    rows = []
    saes = sorted(results["rows"], key=lambda r: (r["width"], r["k"] or 0))
    for r in saes + ([results["pca"]] if results.get("pca") else []):
        flat = {c: r.get(c) for c in CSV_COLUMNS}
        if "dl_theory" in r:
            flat.update(dl_theory=r["dl_theory"]["total"], dl_theory_activity=r["dl_theory"]["activity"],
                        dl_theory_values=r["dl_theory"]["values"])
        flat["selected"] = int(r["method"] == "sae" and r.get("hash") == sel["hash"])
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
    k), the selected SAE wherever it is, and PCA."""
    head = ("| method | width | k | L0 | test MSE | quantised MSE | alive | bits/value | DL theory | payload "
            "| payload/theory | whole file | decoder bits |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in table_rows(results):
        if calibrated_only and r["method"] == "sae" and not (r["calibrated"] or r["selected"]):
            continue
        if r["k"] is None and r["method"] == "sae":
            lines.append(f"| SAE | {r['width']} | - | - | no k meets tol | | | | | | | | |")
            continue
        name = ("**SAE (MDL)**" if r["selected"] else "SAE") if r["method"] == "sae" else "PCA (dense)"
        k = r["k"] if r["k"] is not None else "-"
        mse = f"{r['test_mse']:.5f}" if r["test_mse"] is not None else "-"
        lines.append(f"| {name} | {r['width']} | {k} | {r['l0']:.1f} | {mse} | {r['quantised_test_mse']:.5f} | "
                     f"{r['alive']} | {r['bits_per_value']:.2f} | {r['dl_theory']:.2f} | {r['payload_measured']:.2f} | "
                     f"{r['payload_measured'] / r['dl_theory']:.5f} | {r['dl_measured']:.1f} | {r['decoder_bits']:,} |")
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


def write_results(results: dict, extra: Selected, run_dir: str | Path, image_shape: tuple[int, int] | None = None,
                  plot: bool = True) -> dict[str, Path]:
    """results.json, results.csv, results.md and (if plot) fig2a_dl_vs_l0.png, fig2b_alive_vs_l0.png
    and, for image data, fig2c_features.png in run_dir. Returns name -> path."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": _write_text(out / "results.json", json.dumps(results, indent=1) + "\n"),
             "csv": _write_text(out / "results.csv", csv_text(results)),
             "md": _write_text(out / "results.md", markdown_table(results))}
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
