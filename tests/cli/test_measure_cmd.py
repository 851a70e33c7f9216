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
    shared, ds = toy_model_dir
    model, other = tmp_path / "model", tmp_path / "other"  # copies: -o adds tables to their archives
    shutil.copytree(shared, model)
    shutil.copytree(shared, other)
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


def test_measure_an_imported_peer_sae_on_mnist(peers_dir, mnist_dir, tmp_path):
    """Issue 11's bar: an SAE saved by a peer library, imported, measured at a tolerance: its test
    file decodes exactly (with the imported folder) and its payload is within 0.1% of the entropy
    estimate (the cross-entropy under the fitted tables)."""
    from mdlcodec.data import load_dataset

    model, out = tmp_path / "saelens-topk", tmp_path / "out"
    assert run("import", peers_dir / "saelens-topk", "-o", model).exit_code == 0
    r = run("measure", model, f"mnist:{mnist_dir}", "--max-fvu", 0.3, "--no-pca", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.output)["rows"][0]
    assert abs(row["payload_over_cross_entropy"] - 1) < 0.001 and row["fvu"] <= 0.3
    recon = tmp_path / "recon.npy"
    assert run("decode", row["file"], "-m", model, "-o", recon).exit_code == 0
    lat = tmp_path / "lat.npz"
    assert run("decode", row["file"], "-m", model, "-o", lat, "--latents").exit_code == 0
    test = load_dataset(f"mnist:{mnist_dir}").test
    codec = Codec.load(model) if (model / "codec.safetensors").exists() else None
    x_hat = np.load(recon)
    assert x_hat.shape == test.shape
    assert np.mean((x_hat.astype(np.float64) - test) ** 2) == pytest.approx(row["mse"], rel=1e-6)
    assert codec is None  # measure leaves the model's current tables alone (none were fitted before)


def test_measure_two_part_codes_the_decoder_and_gives_the_break_even(toy_model_dir, tmp_path):
    """--two-part (issue 20 §4): each row's decoder coded at the precision the tolerance allows, the
    self-contained file read back within it, and the SAE's break-even against PCA coded alike."""
    import json

    from mdlcodec.codec.two_part import break_even

    src, ds = toy_model_dir
    model = tmp_path / "model"  # measure -o adds its tables to the model folder: a private copy
    shutil.copytree(src, model)
    np.save(tmp_path / "x.npy", np.concatenate([ds.train, ds.test]))
    r = run("measure", model, tmp_path / "x.npy", "--max-fvu", "0.8", "--two-part", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    rows = {row["method"]: row for row in res["rows"]}
    sae, pca = rows["sae"]["two_part"], rows["pca"]["two_part"]
    n = res["data"]["n_test"]
    for t in (sae, pca):
        assert t["decoder_bits"] > 0 and t["fvu"] <= 0.8 * (1 + 1e-6)  # a 24 x 12 decoder: its tables weigh most
        assert t["total_bits"] == pytest.approx(t["file_bits"] * n + t["decoder_bits"])
    assert sae["break_even_samples_vs_pca"] == break_even(sae["file_bits"], sae["decoder_bits"], pca["file_bits"],
                                                          pca["decoder_bits"])
    text = run("measure", model, tmp_path / "x.npy", "--max-fvu", "0.8", "--two-part", "-o", tmp_path / "out").stdout
    assert "Two-part code" in text and "break-even samples vs PCA" in text
    info = json.loads(run("info", tmp_path / "out" / "model.two_part.mdlc", "--json").stdout)  # no model needed
    assert info["decoder_rows"].startswith("coded") and info["self_contained"]
    assert info["decoder_bits"] < info["bits"]["model"]  # rows + bias; the section also holds the tables
