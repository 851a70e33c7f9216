"""`mdlcodec select` through the command line: a tiny sweep, and bad input as one error line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from tests.selection.helpers import TOY

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(*args):
    return CliRunner().invoke(cli, ["select", *args])


@pytest.mark.parametrize("args,needle", [
    (["--widths", "32,abc"], "'abc' is not a positive integer"),
    (["--widths", "32,,64"], "is not a positive integer"),
    (["--widths", "0,8"], "'0' is not a positive integer"),
    (["--widths", "8,8"], "repeated"),
    (["--tol", "abc"], "is not a number"),
    (["--tol", "-0.1"], "positive"),
    (["--tol", "0"], "positive"),
    (["--tol", "nan"], "positive"),
    (["--objectives", "mdl"], "objectives must include mse"),
    (["--objectives", "mse,l2"], "objectives must include mse"),
])
def test_cli_bad_input_is_one_error_line(args, needle, tmp_path):
    r = _run(TOY, "-o", str(tmp_path / "run"), *args)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert not (tmp_path / "run").exists()


def test_cli_unknown_data_is_one_error_line(tmp_path):
    r = _run("nosuchdata.xyz", "-o", str(tmp_path / "run"), "--widths", "8")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "nosuchdata" in r.output


def test_cli_runs_a_tiny_sweep(tmp_path):
    out = tmp_path / "run"
    args = ("toy:n_features=8,d=8,l0=1,alpha=0,n=1000", "--tol", "0.05", "--widths", "4,8,16", "--epochs", "10",
            "--batch-size", "32", "-o", str(out))
    r = _run(*args, "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "MDL choice: width" in r.output and "| PCA (dense) |" in r.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["command"].startswith("mdlcodec select toy:") and "--widths 4,8,16" in saved["command"]
    assert (out / "results.csv").exists() and (out / "fig2a_dl_vs_l0.png").exists()
    again = _run(*args, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["timing"]["sae_trained"] == 0


def test_cli_select_rdo_puts_plain_and_optimised_side_by_side(tmp_path):
    """select --rdo: each width's shortest-file SAE also coded optimised, both files in the table and
    results.json; the optimised file is no longer than the plain one at the same tolerance, and the
    selected SAE is the row with the shortest valid file, plain or optimised."""
    out = tmp_path / "run"
    tol = 0.05
    r = _run("toy:n_features=8,d=8,l0=1,alpha=0,n=1000", "--tol", str(tol), "--widths", "4,8", "--epochs", "10",
             "--batch-size", "32", "--no-pca", "--rdo", "-o", str(out), "--threads", "1")
    assert r.exit_code == 0, r.output
    header = next(line for line in r.output.splitlines() if line.startswith("| method |"))
    assert "| file | payload (optimised) | file (optimised) | quantised MSE (optimised) |" in header
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["rdo"] is True
    measured = [row for row in res["rows"] if "file_bits" in row]
    for width in (4, 8):
        mine = [row for row in measured if row["width"] == width]
        opt = [row for row in mine if "optimised" in row]
        assert len(opt) == 1 and opt[0]["file_bits"] == min(row["file_bits"] for row in mine)
        o = opt[0]["optimised"]
        assert {"file_bits", "payload_bits", "mse", "rdo_lambda", "per_feature"} <= set(o)
        assert o["mse"] <= tol and opt[0]["quantised_test_mse"] <= tol
        assert o["file_bits"] <= opt[0]["file_bits"] and o["payload_bits"] <= opt[0]["payload_bits"] + 1e-9
        assert opt[0]["best_file_bits"] == min(o["file_bits"], opt[0]["file_bits"])
        line = next(x for x in (out / "results.md").read_text().splitlines() if x.startswith("| ") and
                    f"| {width} | {opt[0]['k']} |" in x)  # shown even when not the calibrated k
        assert f" {o['payload_bits']:.2f} | " in line and f"{o['file_bits']:.1f}" in line
    best = min(measured, key=lambda row: row.get("best_file_bits", row["file_bits"]))
    sel = res["selected"]
    assert sel["hash"] == best["hash"] and sel["file_bits"] == best["best_file_bits"]
    assert sel["plain_file_bits"] == best["file_bits"] and sel["optimised_file_bits"] == best["optimised"]["file_bits"]
    assert sel["encoding"] == ("optimised" if best["optimised"]["file_bits"] < best["file_bits"] else "plain")
    assert f"file {sel['file_bits']:.1f} bits/sample" in r.output and res["checks"]["all_optimised_within_tol"]
    csv_rows = (out / "results.csv").read_text().splitlines()
    head = csv_rows[0].split(",")
    filled = [line.split(",") for line in csv_rows[1:] if line.split(",")[head.index("optimised_file_bits")]]
    assert len(filled) == 2


def test_cli_select_without_rdo_has_no_optimised_columns(tmp_path):
    out = tmp_path / "run"
    r = _run("toy:n_features=8,d=8,l0=1,alpha=0,n=1000", "--tol", "0.05", "--widths", "8", "--epochs", "10",
             "--batch-size", "32", "--no-pca", "-o", str(out), "--threads", "1")
    assert r.exit_code == 0, r.output
    assert "optimised" not in (out / "results.md").read_text()
    res = json.loads((out / "results.json").read_text())
    assert all("optimised" not in row for row in res["rows"]) and "encoding" not in res["selected"]
