"""`fit-codec --rdo` and `measure --rdo`: per-feature steps and rate-distortion optimised encoding from
the command line; the files they lead to decode exactly with the model folder."""

from __future__ import annotations

import json
import shutil

import numpy as np

from mdlcodec.codec import Codec
from tests.cli.helpers import one_line_error, run

TOY = "toy:n=3000,n_features=24,d=12,l0=2"  # the toy_model_dir fixture's data


def test_fit_codec_rdo_keeps_the_shortest_and_encode_uses_it(toy_model_dir, tmp_path):
    shared, ds = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(shared, model)
    tol = 1.3 * float(np.mean((Codec.load(model).decode(Codec.load(model).encode(ds.test)) - ds.test) ** 2))
    r = run("fit-codec", model, TOY, "--max-mse", tol, "--rdo", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    chosen = rep["chosen"]
    assert chosen["test_mse"] <= tol and chosen["bits_per_sample"] == min(v["bits_per_sample"] for v in rep["variants"])
    codec = Codec.load(model)
    assert codec.rdo_lambda == (chosen["rdo_lambda"] if chosen["rdo"] else None)
    out = tmp_path / "t.mdlc"
    r = run("encode", TOY, "--split", "test", "-m", model, "-o", out)
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    codes = codec.decode_latents(data)
    assert codes == codec.latents(ds.test, 4096)
    assert float(np.mean((codec.reconstruct(codes) - ds.test) ** 2)) <= tol * (1 + 1e-6)
    one_line_error(run("fit-codec", model, TOY, "--rdo"), "--max-mse")


def test_measure_rdo_shows_plain_and_optimised_side_by_side(toy_model_dir, tmp_path):
    shared, _ = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(shared, model)
    out = tmp_path / "out"
    r = run("measure", model, TOY, "--max-fvu", 0.8, "--rdo", "--no-pca", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    row = res["rows"][0]
    o = row["optimised"]
    assert o["mse"] <= res["tolerances"][0]["max_mse"] * (1 + 1e-9)
    assert row["best_file_bits"] == min(row["file_bits"], o["file_bits"])
    assert o["file_bits"] <= row["file_bits"]  # the plain code is among the candidates
    r = run("decode", o["file"], "-m", model, "-o", tmp_path / "x.npy", "--latents")
    assert r.exit_code == 0, r.output  # its tables joined the model's archive
    assert "file (optimised)" in (out / "results.md").read_text()
