"""Baselines round-trip within their stated distortion, PCA meets a target MSE, the results writer
and `mdlcodec bench` work on small data, and bad input gives one error line."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from mdlcodec.baselines import (
    COMPRESSORS,
    PCA,
    CodecMethod,
    IntCompressed,
    StoredFloat,
    match_pca,
    pca_codec,
)
from mdlcodec.benchmark import (
    SAEEntry,
    markdown_table,
    measure,
    run_benchmark,
    write_results,
)
from mdlcodec.cli.main import cli
from mdlcodec.codec import Codec
from mdlcodec.codec.container import Reader
from mdlcodec.core.errors import CodecError
from mdlcodec.models import evaluate

TOY = "toy:n=1500,n_features=24,d=12,l0=2"


@pytest.fixture(scope="module")
def data():
    """[n, 16] activations: a rank-6 signal plus small noise, with an offset (train, test)."""
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((6, 16))
    x = (rng.standard_normal((900, 6)) * [3, 2, 1.5, 1, 0.5, 0.3]) @ basis + 0.05 * rng.standard_normal((900, 16)) + 0.7
    x = x.astype(np.float32)
    return x[:700], x[700:]


@pytest.fixture(scope="module")
def toy_sae():
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, train_sae

    ds = load_dataset(TOY)
    sae, _ = train_sae(SAEConfig(arch="batchtopk", d_in=12, d_sae=24, k=2), ds.train, None,
                       TrainConfig(epochs=3, progress=False, seed=0))
    return ds, sae


def test_float32_is_exact_and_float16_rounds(data):
    _, x = data
    f32, f16 = StoredFloat("float32"), StoredFloat("float16")
    b = f32.encode(x)
    assert len(b) == 8 + 4 * x.size
    assert np.array_equal(f32.decode(b), x)
    y = f16.decode(f16.encode(x))
    assert len(f16.encode(x)) == 8 + 2 * x.size
    assert np.all(np.abs(y - x) <= np.abs(x) * 2.0 ** -11 + 1e-7)


@pytest.mark.parametrize("compressor", list(COMPRESSORS))
@pytest.mark.parametrize("bits", [8, 4])
def test_int_compressed_within_half_a_step(data, compressor, bits):
    _, x = data
    m = IntCompressed(compressor, bits)
    b = m.encode(x)
    y = m.decode(b)
    half_step = m.scales(x) / 2
    assert np.all(np.abs(y - x) <= half_step * (1 + 1e-5) + 1e-7)
    assert len(b) < x.size  # fewer bytes than the int8 array itself: the compressor did something
    with pytest.raises(CodecError):
        m.decode(b[: len(b) // 2])


def test_pca_codec_meets_target_mse_and_round_trips(data):
    train, test = data
    pca = PCA.fit(train)
    assert np.allclose(pca.components @ pca.components.T, np.eye(16), atol=1e-9)
    target = 0.05
    match = match_pca(pca, train, test, target)
    data_bytes = match.codec.encode(test)
    x_hat = match.codec.decode(data_bytes)
    mse = float(np.mean((x_hat.astype(np.float64) - test) ** 2))
    assert mse <= target
    assert mse > 0.5 * target  # the coarsest step uses the budget
    assert np.array_equal(x_hat, match.codec.reconstruct(match.codec.latents(test)))
    usable = [r for r in match.search if r["step"] is not None]
    assert match.m == min(usable, key=lambda r: r["ideal_bits_per_sample"])["m"]
    # measured bits match the ideal code length of the chosen point (plus a header of a few hundred bytes)
    ideal = next(r for r in usable if r["m"] == match.m)["ideal_bits_per_sample"]
    assert ideal <= 8 * len(data_bytes) / len(test) <= ideal + 8 * 600 / len(test)


def test_pca_codec_with_fine_step_is_nearly_lossless(data):
    train, test = data
    codec = pca_codec(PCA.fit(train), 16, 1e-4, train)
    assert np.max(np.abs(codec.decode(codec.encode(test)) - test)) < 1e-3


def test_measure_checks_lossless_claims(data):
    _, x = data
    r = measure(StoredFloat("float32"), x)
    assert r["mse"] == 0 and r["bits_per_sample"] == 8 * (8 + 4 * x.size) / len(x)
    bad = StoredFloat("float16")
    bad.lossless = True
    with pytest.raises(AssertionError):
        measure(bad, x)


def test_run_benchmark_and_writer(toy_sae, tmp_path):
    ds, sae = toy_sae
    target = 1.05 * evaluate(sae, ds.test)["mse"]
    res = run_benchmark(ds.train, ds.test, target, [SAEEntry("toy", sae, "fixture")], rd=True)
    names = [r["method"] for r in res["methods"]]
    for n in ["float32", "float16", "int8+gzip", "int8+xz", "int8+zstd", "sae toy", "sae toy self-contained",
              "sae toy chow-liu"]:
        assert n in names
    assert any(n.startswith("pca m=") for n in names)
    for r in res["methods"]:
        assert r["bits_per_sample"] == 8 * r["bytes"] / len(ds.test)
        if r["method"].startswith(("pca", "sae")):
            assert r["mse"] <= target
    sae_row = next(r for r in res["methods"] if r["method"] == "sae toy")
    own = next(r for r in res["methods"] if r["method"] == "sae toy self-contained")
    assert sae_row["model_bits"] == 32 * (24 * 12 + 12 + 1)
    assert own["bytes"] > sae_row["bytes"] + sae_row["model_bits"] / 8  # decoder and tables inside
    cl = next(r for r in res["methods"] if r["method"] == "sae toy chow-liu")
    assert cl["mse"] == sae_row["mse"]  # the same latents, their activity coded given a Chow-Liu forest
    assert cl["model_bits"] == sae_row["model_bits"] + cl["params"]["hierarchy_table_bits"]
    assert cl["bits_per_sample"] <= sae_row["bits_per_sample"] + cl["params"]["hierarchy_table_bits"] / len(ds.test)
    (c,) = res["comparison"]
    assert c["shorter"] in (c["sae"], c["pca"])
    assert set(res["rd"]) >= {"pca", "sae toy", "int+zstd", "float16"}
    res["dataset"] = ds.name
    paths = write_results(res, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["max_mse"] == target
    md = paths["markdown"].read_text()
    assert md == markdown_table(res)
    assert "is shorter" in md and "int8+zstd" in md and "torch" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cli_on_tiny_toy(tmp_path):
    out = tmp_path / "bench"
    r = CliRunner().invoke(cli, ["bench", TOY, "-o", str(out), "--epochs", "2", "--no-rd", "--threads", "1",
                                 "--save-sae", str(tmp_path / "sae")])
    assert r.exit_code == 0, r.output
    assert (out / "results.json").exists() and (out / "results.md").exists() and not (out / "rd.png").exists()
    assert (tmp_path / "sae" / "cfg.json").exists()
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


def test_codec_method_self_contained_decodes_alone(data):
    train, test = data
    codec = pca_codec(PCA.fit(train), 6, 0.05, train)
    b = CodecMethod(codec, "pca", embed_model=True).encode(test)
    own = Codec.from_model_section(Reader.open(io.BytesIO(b)).model_bytes)
    assert np.array_equal(own.decode(b), codec.decode(b))
