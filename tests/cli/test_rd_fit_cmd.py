"""`fit-codec --rdo` reports its search as it goes (stderr) and `encode` says when the tables it
codes with are RDO's."""

from __future__ import annotations

import json
import shutil

import numpy as np

from mdlcodec.codec import Codec
from tests.cli.helpers import run

TOY = "toy:n=3000,n_features=24,d=12,l0=2"  # the toy_model_dir fixture's data


def test_fit_codec_rdo_reports_progress_and_encode_names_rdo_tables(toy_model_dir, tmp_path):
    shared, ds = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(shared, model)
    plain_out = tmp_path / "plain.mdlc"
    r = run("encode", TOY, "--split", "test", "-m", model, "-o", plain_out)
    assert r.exit_code == 0, r.output
    assert "rate-distortion" not in r.output  # plain tables: nothing said
    codec = Codec.load(model)
    tol = 1.3 * float(np.mean((codec.decode(codec.encode(ds.test)) - ds.test) ** 2))
    r = run("fit-codec", model, TOY, "--max-mse", tol, "--rdo")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any("RDO (kappa" in line and "step" in line for line in lines)  # the search's progress
    assert any(line.startswith("kept the shortest") for line in lines)
    codec = Codec.load(model)
    assert codec.rdo_lambda is not None  # RDO wins here
    out = tmp_path / "t.mdlc"
    r = run("encode", TOY, "--split", "test", "-m", model, "-o", out)
    assert r.exit_code == 0, r.output
    assert "rate-distortion optimised" in r.output and f"lambda {codec.rdo_lambda:.4g}" in r.output
    r = run("encode", TOY, "--split", "test", "-m", model, "-o", out, "--force", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rdo_lambda"] == codec.rdo_lambda
    assert codec.decode_latents(out.read_bytes()) == codec.latents(ds.test, 4096)


def test_fit_codec_rdo_json_is_one_object(toy_model_dir, tmp_path):
    shared, ds = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(shared, model)
    codec = Codec.load(model)
    tol = 1.3 * float(np.mean((codec.decode(codec.encode(ds.test)) - ds.test) ** 2))
    r = run("fit-codec", model, TOY, "--max-mse", tol, "--rdo", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)  # no progress lines mixed in
    assert rep["chosen"]["test_mse"] <= tol and rep["test_rows"] == len(ds.test)
