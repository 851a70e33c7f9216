"""encode / decode / info / fit-codec through the command line, good input and bad, flat and with a
Chow-Liu forest (and `mdlcodec hierarchy` on the same model)."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.codec import Codec
from tests.cli.helpers import one_line_error, run


@pytest.fixture()
def files(toy_model_dir, tmp_path):
    model, ds = toy_model_dir
    acts = tmp_path / "acts.npy"
    np.save(acts, ds.test)
    return model, ds, acts, tmp_path


@pytest.mark.parametrize("embed", [False, True])
def test_encode_decode_info_round_trip(files, embed):
    model, ds, acts, tmp = files
    out = tmp / "a.mdlc"
    r = run("encode", acts, "-m", model, "-o", out, "--chunk-size", 100, *(["--embed-model"] if embed else []))
    assert r.exit_code == 0, r.output
    before = acts.read_bytes()
    recon = tmp / "recon.npy"
    r = run("decode", out, *([] if embed else ["-m", model]), "-o", recon)
    assert r.exit_code == 0, r.output
    codec = Codec.load(model)
    codes = codec.latents(ds.test, chunk_size=100)
    np.testing.assert_array_equal(np.load(recon), codec.reconstruct(codes))
    lat = tmp / "lat.npz"
    assert run("decode", out, "-m", model, "-o", lat, "--latents").exit_code == 0
    z = np.load(lat)
    assert np.array_equal(z["indptr"], codes.indptr) and np.array_equal(z["bins"], codes.bins)
    r = run("info", out, "-m", model, "--against", acts, "--json")
    info = json.loads(r.output)
    b = info["bits_per_sample"]
    assert info["samples"] == len(ds.test) and info["self_contained"] == embed
    assert b["activity"] + b["values"] == pytest.approx(b["payload"])
    assert b["payload"] == pytest.approx(b["cross_entropy"], rel=0.01, abs=1.0)
    assert info["mse"] == pytest.approx(float(np.mean((np.load(recon) - ds.test) ** 2)), rel=1e-5)
    assert b["file"] == pytest.approx(8 * out.stat().st_size / len(ds.test))
    assert acts.read_bytes() == before
    text = run("info", out, "-m", model, "--against", acts)
    assert text.exit_code == 0 and "model entropy" in text.output and "cross-entropy" in text.output and "MSE" in text.output


def test_fit_codec_cli(files):
    model, ds, acts, tmp = files
    m2 = tmp / "m2"
    shutil.copytree(model, m2)
    (m2 / "codec.safetensors").unlink()
    one_line_error(run("encode", acts, "-m", m2, "-o", tmp / "x.mdlc"), "fit-codec")
    r = run("fit-codec", m2, "toy:n=3000,n_features=24,d=12,l0=2", "--max-mse", 1.0, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["quantised_test_mse"] <= 1.0
    assert run("encode", acts, "-m", m2, "-o", tmp / "x.mdlc").exit_code == 0


def test_bad_input_is_one_line_error(files):
    model, ds, acts, tmp = files
    good = tmp / "good.mdlc"
    assert run("encode", acts, "-m", model, "-o", good).exit_code == 0
    data = good.read_bytes()
    # corrupted, truncated, wrong magic, wrong version
    for name, blob, needle in [("flip", data[:60] + bytes([data[60] ^ 1]) + data[61:], "corrupted"),
                               ("cut", data[:-5], "truncated"),
                               ("magic", b"XXXX" + data[4:], "magic"),
                               ("version", data[:8] + b"\x09\x00" + data[10:], "version")]:
        p = tmp / f"{name}.mdlc"
        p.write_bytes(blob)
        one_line_error(run("decode", p, "-m", model, "-o", tmp / f"{name}.npy"), needle)
        assert not (tmp / f"{name}.npy").exists()
    # a model whose fingerprint differs
    other = tmp / "other"
    shutil.copytree(model, other)
    import torch

    from mdlcodec.models import load_sae, save_sae
    sae = load_sae(other)
    with torch.no_grad():
        sae.W_dec[0, 0] += 1e-3
    shutil.rmtree(other)
    save_sae(sae, other)
    shutil.copy(model / "codec.safetensors", other / "codec.safetensors")  # stale tables
    one_line_error(run("decode", good, "-m", other, "-o", tmp / "o.npy"), "fitted for other SAE weights")
    from mdlcodec.codec.rate.precision import fit_codec
    fit_codec(sae, ds.train, ds.test)[0].save_tables(other)
    one_line_error(run("decode", good, "-m", other, "-o", tmp / "o.npy"), "does not match")
    # a referenced file without its model
    one_line_error(run("decode", good, "-o", tmp / "o.npy"), "-m MODEL")
    # activations of the wrong width, NaN, Inf
    for name, arr, needle in [("wide", np.zeros((5, 13), np.float32), "width"),
                              ("nan", np.full((5, 12), np.nan, np.float32), "NaN"),
                              ("inf", np.full((5, 12), np.inf, np.float32), "Inf")]:
        p = tmp / f"{name}.npy"
        np.save(p, arr)
        one_line_error(run("encode", p, "-m", model, "-o", tmp / f"{name}.mdlc"), needle)
        assert not (tmp / f"{name}.mdlc").exists()
    # never overwrite: an existing output, or the input itself
    one_line_error(run("encode", acts, "-m", model, "-o", good), "exists")
    assert good.read_bytes() == data
    one_line_error(run("decode", good, "-m", model, "-o", good, "--force"), "overwrite the input")
    assert good.read_bytes() == data
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_cli_chow_liu_fit_encode_decode_and_report(tmp_path, toy_model_dir):
    import shutil

    src, ds = toy_model_dir
    model = tmp_path / "model"
    shutil.copytree(src, model)
    acts = tmp_path / "test.npy"
    np.save(acts, ds.test)
    run = CliRunner().invoke
    r = run(cli, ["encode", str(acts), "-m", str(model), "-o", str(tmp_path / "x.mdlc"), "--hierarchy", "chowliu"])
    assert r.exit_code == 1 and "fit-codec" in r.output and "Traceback" not in r.output
    r = run(cli, ["fit-codec", str(model), ds.spec, "--hierarchy", "chowliu", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["hierarchy"]["kind"] == "conditional"
    outs = {}
    for mode in ("chowliu", "flat"):
        dst = tmp_path / f"{mode}.mdlc"
        r = run(cli, ["encode", str(acts), "-m", str(model), "-o", str(dst), "--hierarchy", mode])
        assert r.exit_code == 0, r.output
        rec = tmp_path / f"{mode}.npy"
        r = run(cli, ["decode", str(dst), "-m", str(model), "-o", str(rec)])
        assert r.exit_code == 0, r.output
        outs[mode] = np.load(rec)
    assert np.array_equal(outs["chowliu"], outs["flat"])  # same quantised latents, coded two ways
    r = run(cli, ["info", str(tmp_path / "chowliu.mdlc"), "-m", str(model), "--json"])
    assert json.loads(r.output)["hierarchy"]["kind"] == "conditional"
    r = run(cli, ["hierarchy", str(model), ds.spec, "--top", "3", "-o", str(tmp_path / "h.json")])
    assert r.exit_code == 0, r.output
    h = json.loads((tmp_path / "h.json").read_text())
    assert len(h["parents"]) == 24 and h["edges_count"] == sum(v >= 0 for v in h["parents"])
    r = run(cli, ["hierarchy", str(model), ds.spec, "--png", str(tmp_path / "h.png")])
    assert r.exit_code == 1 and "square" in r.output and not (tmp_path / "h.png").exists()
