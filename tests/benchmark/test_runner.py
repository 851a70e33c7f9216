"""mdlcodec.benchmark.runner and report: every method on a small toy set at a matched distortion,
and the results written as JSON, markdown and PNG."""

from __future__ import annotations

import json

import pytest

from mdlcodec.benchmark import SAEEntry, markdown_table, run_benchmark, write_results
from mdlcodec.models import evaluate
from tests.benchmark.helpers import TOY


@pytest.fixture(scope="module")
def toy_sae():
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, train_sae

    ds = load_dataset(TOY)
    sae, _ = train_sae(SAEConfig(arch="batchtopk", d_in=12, d_sae=24, k=2), ds.train, None,
                       TrainConfig(epochs=3, progress=False, seed=0))
    return ds, sae


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
