"""`mdlcodec data`: describing the toy model and files, and bad input as one error line."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import save_file

from mdlcodec.cli.main import cli
from tests.cli.helpers import run_process
from tests.data.helpers import _matrix


def test_cli_describes_toy_and_files(tmp_path):
    r = CliRunner().invoke(cli, ["data", "toy", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["n_train"], info["n_test"], info["d"], info["toy"]["true_features"]) == (16000, 4000, 32, 64)
    assert info["toy"]["expected_l0"] == pytest.approx(3) and info["toy"]["true_entropy_bits_per_sample"] > 0
    x = _matrix()
    np.save(tmp_path / "x.npy", x)
    r = CliRunner().invoke(cli, ["data", str(tmp_path / "x.npy"), "--json"])
    s = json.loads(r.stdout)["train"]
    assert s["min"] == pytest.approx(x[:8].min()) and s["max"] == pytest.approx(x[:8].max())
    assert s["mean_sq_norm"] == pytest.approx((x[:8].astype(np.float64) ** 2).sum(1).mean())
    assert s["total_variance"] == pytest.approx(x[:8].astype(np.float64).var(0).sum())
    r = CliRunner().invoke(cli, ["data", "toy:n=100"])
    assert r.exit_code == 0 and "expected L0 3" in r.stdout


def _bad_inputs(tmp):
    nan = _matrix()
    nan[5, 0] = np.nan
    inf = _matrix()
    inf[9, 2] = -np.inf
    files = {"nan.npy": nan, "inf.npy": inf, "one_d.npy": np.zeros(5, np.float32),
             "three_d.npy": np.zeros((2, 2, 2), np.float32), "empty.npy": np.zeros((0, 4), np.float32),
             "no_cols.npy": np.zeros((4, 0), np.float32), "bool.npy": np.zeros((4, 4), bool),
             "one_row.npy": np.zeros((1, 4), np.float32)}
    for name, arr in files.items():
        np.save(tmp / name, arr)
    (tmp / "garbage.npy").write_bytes(b"not a numpy file")
    (tmp / "x.csv").write_text("1,2\n")
    np.savez(tmp / "nan.npz", a=nan)
    save_file({"a": np.zeros((3,), np.float32)}, str(tmp / "one_d.safetensors"))
    torch.save({"step": 3}, tmp / "notensor.pt")
    return {
        "missing file": (str(tmp / "missing.npy"), "no such file"),
        "NaN": (str(tmp / "nan.npy"), "contains NaN"), "Inf": (str(tmp / "inf.npy"), "contains Inf"),
        "NaN npz": (str(tmp / "nan.npz"), "contains NaN"),
        "1-D": (str(tmp / "one_d.npy"), "2-D"), "3-D": (str(tmp / "three_d.npy"), "2-D"),
        "1-D safetensors": (str(tmp / "one_d.safetensors"), "2-D"),
        "empty": (str(tmp / "empty.npy"), "empty"), "no columns": (str(tmp / "no_cols.npy"), "empty"),
        "one row": (str(tmp / "one_row.npy"), "at least 2"),
        "bool": (str(tmp / "bool.npy"), "dtype bool"), "corrupt": (str(tmp / "garbage.npy"), "cannot read"),
        "unknown extension": (str(tmp / "x.csv"), "unknown file type"),
        "pt without tensors": (str(tmp / "notensor.pt"), "without tensors"),
        "unknown spec": ("imagenet", "unknown dataset spec"),
        "unknown toy key": ("toy:widht=3", "unknown key 'widht'"),
        "bad toy value": ("toy:n=lots", "n='lots' is not an integer"),
        "impossible toy": ("toy:l0=1000", "l0=1000"),
        "mnist missing": (f"mnist:{tmp / 'nowhere'}", "no MNIST test images"),
    }


def test_cli_bad_input_is_one_error_line(tmp_path):
    for case, (spec, message) in _bad_inputs(tmp_path).items():
        r = CliRunner().invoke(cli, ["data", spec])
        assert r.exit_code == 1, (case, r.output)
        assert isinstance(r.exception, SystemExit), (case, r.exception)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (case, r.stderr)
        assert "Traceback" not in r.output


def test_a_pt_file_torch_refuses_is_one_line_on_stderr(tmp_path):
    """Issue 19 §9: a .pt that is a plain pickle makes torch warn in two lines before it refuses it;
    the user sees the error line alone."""
    with open(tmp_path / "x.pt", "wb") as f:
        pickle.dump({"x": np.zeros((4, 3), np.float32)}, f, protocol=4)
    r = run_process("data", tmp_path / "x.pt")
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"error: cannot read {tmp_path / 'x.pt'}: torch.load with weights_only=True "
                               "refused it"), r.stderr
