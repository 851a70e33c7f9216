"""The commands of mdlcodec.cli.bench_cmd through the command line: `mdlcodec bench` on a tiny toy
set, `mdlcodec splitting` and `mdlcodec hierarchy-figure`, bad input as one error line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.models.io import CFG_FILE
from tests.benchmark.helpers import TOY


# --- bench ---------------------------------------------------------------------------------------------

def test_bench_cli_on_tiny_toy(tmp_path):
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["bench", TOY, "-o", str(out), "--epochs", "2", "--no-rd", "--threads", "1",
                                 "--save-sae", str(tmp_path / "sae")])
    assert r.exit_code == 0, r.output
    assert (out / "results.json").exists() and (out / "results.md").exists() and not (out / "rd.png").exists()
    assert (tmp_path / "sae" / CFG_FILE).exists()
    res = json.loads((out / "results.json").read_text())
    assert res["sae_training"][0]["d_sae"] == 24 and res["bench_options"]["data"] == TOY
    assert "| int8+zstd |" in r.stdout
    # the SAE it saved can be benchmarked with -m; results already there need --force
    r = CliRunner().invoke(cli, ["bench", TOY, "-o", str(out), "-m", str(tmp_path / "sae"), "--no-rd"])
    assert r.exit_code == 1 and r.stderr.strip().startswith("error:") and "--force" in r.stderr
    r = CliRunner().invoke(cli, ["bench", TOY, "-o", str(out), "-m", str(tmp_path / "sae"), "--no-rd", "--force"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args,message", [
    (["missing.npy"], "missing.npy"),
    ([TOY, "-m", "no_such_model_dir"], "no_such_model_dir"),
    ([TOY, "--no-train"], "--max-mse"),
])
def test_bench_cli_bad_input_is_one_error_line(tmp_path, args, message):
    r = CliRunner().invoke(cli, ["bench", *args, "-o", str(tmp_path / "o"), "--no-rd"])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], r.stderr
    assert not any(line.startswith("Traceback") for line in lines)


def test_bench_cli_bad_npy(tmp_path):
    bad = tmp_path / "bad.npy"
    x = np.ones((50, 4), np.float32)
    x[3, 1] = np.nan
    np.save(bad, x)
    r = CliRunner().invoke(cli, ["bench", str(bad), "-o", str(tmp_path / "o"), "--max-mse", "0.1", "--no-train"])
    assert r.exit_code == 1 and r.stderr.strip().splitlines()[-1].startswith("error: ") and "NaN" in r.stderr


# --- splitting (Figure 3) -----------------------------------------------------------------------------

def test_splitting_cli(tmp_path):
    out = tmp_path / "s"
    args = ["splitting", "-o", str(out), "--grid", "3", "--n", "2000", "--points-n", "2000"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "splitting.json").read_text())
    assert len(res["points"]) >= 5 and len(res["grid"]["p"]) == 3
    assert (out / "splitting.png").read_bytes()[:4] == b"\x89PNG"
    assert "| p | rho |" in r.stdout
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and r.stderr.strip().startswith("error:") and "--force" in r.stderr


# --- hierarchy-figure (Figure 5) ----------------------------------------------------------------------

def test_hierarchy_figure_cli(tmp_path):
    out = tmp_path / "h"
    args = ["hierarchy-figure", "-o", str(out), "--grid", "3", "--n", "2000", "--points-n", "2000"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "hierarchy_figure.json").read_text())
    assert len(res["points"]) >= 5 and len(res["grid"]["p_a"]) == 3
    assert (out / "hierarchy_figure.png").read_bytes()[:4] == b"\x89PNG"
    assert "| p_A |" in r.stdout and "| p_A |" in (out / "hierarchy_figure.md").read_text()
    r = CliRunner().invoke(cli, args)  # results there: refused without --force
    assert r.exit_code == 1 and r.stderr.strip().startswith("error:") and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_hierarchy_figure_cli_bad_output(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    args = ["--grid", "3", "--n", "200", "--points-n", "200"]
    r = CliRunner().invoke(cli, ["hierarchy-figure", "-o", str(f / "sub"), *args])  # a folder under a file
    assert r.exit_code == 1 and r.stderr.strip().startswith("error:") and "output folder" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = CliRunner().invoke(cli, ["hierarchy-figure", "-o", str(f), *args])  # a file: click refuses it
    assert r.exit_code == 2 and "is a file" in r.stderr
    r = CliRunner().invoke(cli, ["hierarchy-figure", "-o", str(tmp_path / "g"), "--grid", "2"])
    assert r.exit_code == 2 and "--grid" in r.stderr


def test_bench_cli_rdo_rows_beside_the_plain_ones(tmp_path):
    """bench --rdo: "+rdo" and "+rdo chow-liu" rows right after the SAE's plain rows, no longer than
    the plain files at the same target MSE, and the SAE's comparison with PCA made with its shortest
    valid file."""
    out, max_mse = tmp_path / "bench", 0.08
    r = CliRunner().invoke(cli, ["bench", TOY, "-o", str(out), "--epochs", "20", "--no-rd", "--threads", "1",
                                 "--max-mse", str(max_mse), "--rdo"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    names = [row["method"] for row in res["methods"]]
    label = res["comparison"][0]["sae"]
    i = names.index(label)
    assert names[i:i + 5] == [label, f"{label} self-contained", f"{label} chow-liu", f"{label} +rdo",
                              f"{label} +rdo chow-liu"]
    by = {row["method"]: row for row in res["methods"]}
    for plain, opt in ((label, f"{label} +rdo"), (f"{label} chow-liu", f"{label} +rdo chow-liu")):
        assert by[opt]["mse"] <= max_mse and by[plain]["mse"] <= max_mse
        assert by[opt]["bits_per_sample"] <= by[plain]["bits_per_sample"]
        assert f"| {opt} |" in r.stdout
    assert by[f"{label} +rdo"]["params"]["rdo_lambda"] is None or by[f"{label} +rdo"]["params"]["rdo_lambda"] > 0
    c = res["comparison"][0]
    valid = [by[n] for n in names[i:i + 5] if "self-contained" not in n]
    assert c["sae_best_bits_per_sample"] == min(row["bits_per_sample"] for row in valid)
    assert c["sae_best_bits_per_sample"] <= c["sae_bits_per_sample"]
    pca = c["pca_bits_per_sample"]
    assert c["shorter"] == (c["sae_best"] if c["sae_best_bits_per_sample"] < pca else c["pca"])
    assert f"shortest valid file {c['sae_best_bits_per_sample']:.1f} ({c['sae_best']})" in r.stdout
