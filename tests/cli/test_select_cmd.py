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
