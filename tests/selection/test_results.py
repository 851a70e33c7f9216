"""mdlcodec.selection.results: results.json and results.csv hold what redoes a row; the figures and
the markdown table are written."""

from __future__ import annotations

import csv
import json

import pytest

from mdlcodec.selection.results import CSV_COLUMNS
from tests.selection.helpers import TOL, TOY, WIDTHS

pytestmark = pytest.mark.usefixtures("one_thread")


def test_results_files_hold_what_redoes_a_row(sweep):
    run_dir, results, _ = sweep
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["selected"] == results["selected"]
    assert {"mdlcodec", "torch", "numpy", "constriction"} <= set(saved["versions"])
    cfg, tcfg = saved["config"], saved["train_config"]
    assert cfg["tol"] == TOL and cfg["seed"] == 0 and tcfg["epochs"] == 30 and tcfg["lr"] > 0
    assert saved["data"]["spec"] == TOY and saved["data"]["fingerprint"]
    for r in saved["rows"]:
        if r["k"] is not None:
            entry = json.loads((run_dir / "cache" / r["hash"] / "entry.json").read_text())
            assert entry["key"]["sae"]["k"] == r["k"] and entry["key"]["train"]["seed"] == 0
            assert r["epochs_run"] >= 1
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["method"] for r in rows].count("pca") == 1
    assert sum(r["selected"] == "1" for r in rows) == 1
    sel = next(r for r in rows if r["selected"] == "1")
    assert int(sel["width"]) == results["selected"]["width"] and float(sel["file_bits"]) > 0
    assert {int(r["width"]) for r in rows if r["method"] == "sae"} == set(WIDTHS)
    for name in ("fig2a_dl_vs_l0.png", "fig2b_alive_vs_l0.png", "results.md"):
        assert (run_dir / name).stat().st_size > 0
    assert not (run_dir / "fig2c_features.png").exists()  # toy data are not images
