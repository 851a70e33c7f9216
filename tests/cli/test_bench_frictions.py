"""Issue 10, friction 5: `mdlcodec bench` checks what it can before training, saves the SAE it
trains before measuring it, and an SAE that cannot meet the target MSE is recorded as skipped while
every other method's results are still written."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.models.io import CFG_FILE

TOY = "toy:n=2000,n_features=24,d=12,l0=2"


def _bench(*args: str):
    return CliRunner().invoke(cli, ["bench", TOY, "--threads", "1", *args])


def test_an_sae_above_the_target_is_skipped_and_the_baselines_written(tmp_path):
    out = tmp_path / "bench"
    r = _bench("-o", str(out), "--epochs", "2", "--max-mse", "1e-9", "--no-rd")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    methods = [m["method"] for m in res["methods"]]
    assert "float32" in methods and "int8+zstd" in methods and any(m.startswith("pca") for m in methods)
    assert not any(m.startswith("sae") for m in methods) and res["comparison"] == []
    (skip,) = [s for s in res["skipped"] if s["method"].startswith("sae")]
    assert skip["method"] == "sae batchtopk w24 k2" and "above the target 1e-09" in skip["reason"]
    assert skip["unquantised_test_mse"] > 1e-9
    assert "Skipped sae batchtopk w24 k2" in (out / "results.md").read_text()
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "sae batchtopk w24 k2" in warnings[0] and "--max-mse" in warnings[0]
    # the SAE was saved before it was measured, by default into the output folder
    assert (out / "sae" / CFG_FILE).exists() and res["sae_training"][0]["saved"] == str(out / "sae")
    assert skip["source"] == str(out / "sae")


def test_skipped_sae_still_gets_the_figure_of_the_other_methods(tmp_path):
    out = tmp_path / "bench"
    r = _bench("-o", str(out), "--epochs", "1", "--max-mse", "1e-9", "--save-sae", str(tmp_path / "mine"))
    assert r.exit_code == 0, r.output
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    assert {"int+zstd", "float16"} <= set(res["rd"]) and not any(k.startswith("sae") for k in res["rd"])
    assert (tmp_path / "mine" / CFG_FILE).exists() and not (out / "sae").exists()


def _one_error_line(r, *needles: str) -> None:
    assert r.exit_code != 0, r.output
    lines = r.stderr.strip().splitlines()
    assert lines and not any(line.startswith("Traceback") for line in lines), r.stderr
    assert all(n in lines[-1] for n in needles), r.stderr


def test_checks_before_training(tmp_path):
    out = tmp_path / "bench"
    # the folder for the trained SAE is refused before the training, not after
    (out / "sae").mkdir(parents=True)
    (out / "sae" / CFG_FILE).write_text("{}")
    r = _bench("-o", str(out), "--epochs", "1", "--no-rd")
    _one_error_line(r, "error:", str(out / "sae"), "--force")
    assert "training batchtopk" not in r.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _bench("-o", str(tmp_path / "b2"), "--save-sae", str(blocker), "--no-rd")
    _one_error_line(r, str(blocker))  # click refuses a file for --save-sae
    assert "training batchtopk" not in r.stderr
    # a width or k the SAE cannot have, before training
    r = _bench("-o", str(tmp_path / "b3"), "--width", "4", "--k", "8", "--no-rd")
    _one_error_line(r, "error:")
    assert "training batchtopk" not in r.stderr and not (tmp_path / "b3").exists()
    # options that only concern the SAE the bench trains, when it trains none
    r = _bench("-o", str(tmp_path / "b4"), "--no-train", "--max-mse", "0.1", "--save-sae", str(tmp_path / "s"))
    _one_error_line(r, "--save-sae", "--no-train")
    r = _bench("-o", str(tmp_path / "b4"), "--no-train", "--width", "8")
    _one_error_line(r, "--width")
    assert not (tmp_path / "b4").exists()


# --- issue 10, friction 10: bench/chowliu_savings.py never replaces its committed file with a subset ---

def _chowliu_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "chowliu_savings.py"
    spec = importlib.util.spec_from_file_location("chowliu_savings_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chowliu_savings_writes_its_committed_file_only_for_the_full_set(tmp_path, capsys):
    import shlex

    import pytest

    s = _chowliu_script()
    committed = s.COMMITTED.read_bytes()
    recorded = shlex.split(json.loads(committed)["command"])[2:]  # "python bench/chowliu_savings.py ARGS"

    def output(argv):
        ap = s.parser()
        return s._output(ap, ap.parse_args(argv))

    assert output(recorded) == output(s.FULL_ARGS) == s.COMMITTED  # FULL_ARGS is what the file records
    assert output(["--lm-spec", "toy:lm,hierarchy=1024", "toy:lm", "--lm-width", "4096", "1024"]) == s.COMMITTED
    assert output([]) == output(["--skip-mnist", *s.FULL_ARGS]) == s.PARTIAL_OUTPUT
    with pytest.raises(SystemExit):
        s.main(["--skip-mnist", "--skip-lm", "-o", str(s.COMMITTED)])
    assert "another -o" in capsys.readouterr().err
    assert s.COMMITTED.read_bytes() == committed
    assert s.main(["--skip-mnist", "--skip-lm", "-o", str(tmp_path / "partial.json")]) == 0
    assert json.loads((tmp_path / "partial.json").read_text())["rows"] == []

