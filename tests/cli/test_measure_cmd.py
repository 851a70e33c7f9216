"""`mdlcodec measure`: several SAEs and PCA at one tolerance, one table, real files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mdlcodec.codec import Codec
from tests.cli.helpers import one_line_error, run

TOY = "toy:n=3000,n_features=24,d=12,l0=2"  # the toy_model_dir fixture's data


def test_measure_two_saes_and_pca_at_one_fvu(toy_model_dir, tmp_path):
    model, ds = toy_model_dir
    other = tmp_path / "other"
    shutil.copytree(model, other)
    out = tmp_path / "out"
    r = run("measure", model, other, TOY, "--max-fvu", 0.8, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["schema"] == "mdlcodec.measure/1" and not res["skipped"]
    rows = res["rows"]
    assert [r["method"] for r in rows].count("sae") == 2 and [r["method"] for r in rows].count("pca") == 1
    assert [r["file_bits"] for r in rows] == sorted(r["file_bits"] for r in rows)
    assert [s["name"] for s in res["stored"]] == ["float16", "int8+zstd"]
    assert res["stored"][0]["file_bits"] == pytest.approx(16 * ds.d, rel=0.01)
    var = res["tolerance"]["test_variance"]
    assert res["tolerance"]["max_mse"] == pytest.approx(0.8 * var)
    for r in rows:
        assert r["fvu"] <= 0.8 + 1e-9 and r["mse"] <= res["tolerance"]["max_mse"] * (1 + 1e-9)
        assert r["payload_bits"] == pytest.approx(r["activity_bits"] + r["values_bits"])
        assert r["file_bits"] == pytest.approx(8 * (out / f"{r['name'].split(' ')[0]}.mdlc").stat().st_size
                                               / len(ds.test)) if r["method"] == "sae" else True
        assert abs(r["payload_over_cross_entropy"] - 1) < 0.05  # a few bits a sample: a word is 4%
    # the kept file decodes exactly to the codec's quantised latents
    sae_row = next(r for r in rows if r["method"] == "sae")
    data = (out / f"{sae_row['name']}.mdlc").read_bytes()
    assert (out / "results.json").is_file() and (out / "results.md").is_file()
    r = run("decode", out / f"{sae_row['name']}.mdlc", "-m", sae_row["source"], "-o", tmp_path / "x.npy")
    assert r.exit_code == 0, r.output  # the fitted tables joined the model's archive
    assert Codec.load(model).decode(data).shape == ds.test.shape
    one_line_error(run("measure", model, TOY, "--max-fvu", 0.8, "-o", out), "exists")


def test_measure_says_in_one_line_what_cannot_meet_the_tolerance(toy_model_dir):
    model, _ = toy_model_dir
    r = run("measure", model, TOY, "--max-fvu", 1e-6, "--no-pca")
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1].startswith("error: nothing meets"), r.output
    r = run("measure", model, TOY, "--max-fvu", 1e-6)
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "cannot meet the tolerance" in ln]
    assert len(lines) == 1 and lines[0].startswith("model cannot meet")


def test_measure_refuses_bad_input_before_work(toy_model_dir, tmp_path):
    model, _ = toy_model_dir
    one_line_error(run("measure", model, TOY), "--max-fvu")
    one_line_error(run("measure", tmp_path / "none", TOY, "--max-fvu", 0.1), "does not exist")
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((50, 7), np.float32))
    one_line_error(run("measure", model, wide, "--max-fvu", 0.1), "width")
