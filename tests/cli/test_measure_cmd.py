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
    assert res["schema"] == "mdlcodec.measure/2" and not res["skipped"]
    rows = res["rows"]
    assert [r["method"] for r in rows].count("sae") == 2 and [r["method"] for r in rows].count("pca") == 1
    assert [r["file_bits"] for r in rows] == sorted(r["file_bits"] for r in rows)
    assert [s["name"] for s in res["stored"]] == ["float16", "int8+zstd"]
    assert res["stored"][0]["file_bits"] == pytest.approx(16 * ds.d, rel=0.01)
    var = res["data"]["test_variance"]
    (tol,) = res["tolerances"]
    assert tol["max_mse"] == pytest.approx(0.8 * var) and tol["max_fvu"] == 0.8
    for r in rows:
        assert r["fvu"] <= 0.8 + 1e-9 and r["mse"] <= tol["max_mse"] * (1 + 1e-9)
        assert (r["max_mse"], r["max_fvu"]) == (tol["max_mse"], tol["max_fvu"])
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
    for bad, says in (("0.1,1.5", "out of (0, 1]"), ("0,0.1", "out of (0, 1]"), ("0.1,abc", "not a number"),
                      ("0.1,,0.2", "not a number"), ("0.1,0.1", "given twice"), ("nan", "out of (0, 1]")):
        one_line_error(run("measure", model, TOY, "--max-fvu", bad), says)
    one_line_error(run("measure", model, TOY, "--max-mse", "0.1,-2"), "not a finite number > 0")
    one_line_error(run("measure", model, TOY, "--max-fvu", 0.5, "--norm-quantile", 1.5), "(0, 1]")


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

    from mdlcodec.codec.rate.two_part import break_even

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


def test_measure_over_several_tolerances_gives_the_curve(toy_model_dir, tmp_path):
    """Issue 18 §3: --max-fvu F1,F2,... gives one table per tolerance, rows tagged with their
    tolerance, a curve that falls as the tolerance loosens, one kept file per tolerance, a plot;
    an SAE that cannot meet one tolerance is one line there and measured at the others."""
    shared, ds = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(shared, model)
    out, plot = tmp_path / "out", tmp_path / "curve.png"
    r = run("measure", model, TOY, "--max-fvu", "1e-6,0.9,0.6", "-o", out, "--plot", plot, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert [t["max_fvu"] for t in res["tolerances"]] == [1e-6, 0.9, 0.6]
    assert [(s["name"], s["max_fvu"]) for s in res["skipped"]] == [("model", 1e-6)]  # the SAE's own error is above it
    sae = [r for r in res["rows"] if r["method"] == "sae"]
    assert [r["max_fvu"] for r in sae] == [0.9, 0.6]
    assert sae[0]["file_bits"] < sae[1]["file_bits"] and sae[0]["fvu"] > sae[1]["fvu"]  # looser: fewer bits
    assert [r["max_fvu"] for r in res["rows"]] == sorted((r["max_fvu"] for r in res["rows"]), key=[1e-6, 0.9, 0.6].index)
    for r in sae:
        f = out / f"model.fvu{r['max_fvu']:g}.mdlc"
        assert r["file"] == str(f) and r["file_bits"] == pytest.approx(8 * f.stat().st_size / len(ds.test))
        assert run("decode", f, "-m", model, "-o", tmp_path / f"{f.name}.npy").exit_code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "rd.png").is_file()
    text = run("measure", model, TOY, "--max-fvu", "0.9,0.6", "--no-pca").stdout
    assert text.count("| method |") == 2 and "FVU <= 0.9)" in text and "FVU <= 0.6)" in text
    one_line_error(run("measure", model, TOY, "--max-fvu", "0.9,0.6", "--plot", plot), "exists")


def test_measure_reports_fvu_below_a_norm_quantile(toy_model_dir, tmp_path):
    """Issue 18 §5: a few massive tokens dominate FVU over all tokens; FVU below the norm quantile
    leaves them out, and data.norm_cut says how many tokens that keeps."""
    from mdlcodec.measurement.tokens import NormCut

    shared, ds = toy_model_dir
    x = np.concatenate([ds.train, ds.test]).astype(np.float32)
    x[-5:] *= 40  # five massive test tokens
    np.save(tmp_path / "x.npy", x)
    r = run("measure", shared, tmp_path / "x.npy", "--max-fvu", 0.8, "--norm-quantile", 0.99, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    cut = res["data"]["norm_cut"]
    n_test = res["data"]["n_test"]
    assert cut["quantile"] == 0.99 and 5 <= n_test - cut["tokens"] <= int(np.ceil(0.01 * n_test))
    test = x[-n_test:]
    ref = NormCut.of(test, 0.99)
    assert cut["tokens"] == int(ref.rows.sum()) and not ref.rows[-5:].any()
    for row in res["rows"]:
        assert np.isfinite(row["fvu_below_norm_cut"]) and row["fvu_below_norm_cut"] != pytest.approx(row["fvu"], rel=1e-3)
    all_kept = json.loads(run("measure", shared, tmp_path / "x.npy", "--max-fvu", 0.8, "--norm-quantile", 1,
                              "--json", "--no-pca").stdout)
    assert all_kept["data"]["norm_cut"]["tokens"] == n_test
    assert all_kept["rows"][0]["fvu_below_norm_cut"] == pytest.approx(all_kept["rows"][0]["fvu"], rel=1e-6)


def test_measure_chow_liu_codes_the_same_latents_with_a_forest(toy_model_dir, tmp_path):
    shared, ds = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(shared, model)
    out = tmp_path / "out"
    r = run("measure", model, TOY, "--max-fvu", "0.9,0.7", "--chow-liu", "--no-pca", "-o", out, "--json")
    assert r.exit_code == 0, r.output
    for row in json.loads(r.stdout)["rows"]:
        c = row["chow_liu"]
        assert c["edges"] >= 0 and abs(c["payload_bits"] / c["cross_entropy_bits"] - 1) < 0.05
        assert c["file"] == str(out / f"model.fvu{row['max_fvu']:g}.chowliu.mdlc")
        lat = tmp_path / f"{row['max_fvu']}.npz"
        assert run("decode", c["file"], "-m", model, "-o", lat, "--latents").exit_code == 0  # its tables are kept
        plain = tmp_path / f"{row['max_fvu']}.plain.npz"
        assert run("decode", row["file"], "-m", model, "-o", plain, "--latents").exit_code == 0
        import scipy.sparse
        a, b = scipy.sparse.load_npz(lat), scipy.sparse.load_npz(plain)
        assert (a != b).nnz == 0  # the same quantised latents, coded two ways
    assert "file (Chow-Liu)" in (out / "results.md").read_text()
