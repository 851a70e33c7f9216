"""`mdlcodec harvest`, and a shard folder through `data`, `encode`, `decode` and `info` (tiny model built offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers", reason="harvest needs transformers (the [lm] extra); not installed")

from mdlcodec.data import load_dataset
from mdlcodec.data.shards import open_shards, read_manifest
from tests.cli.helpers import one_line_error, run
from tests.data.lm_helpers import make_model, sentences

pytestmark = pytest.mark.usefixtures("one_thread")
SENTS = sentences(300, seed=1)
N = sum(len(s.split()) for s in SENTS)


@pytest.fixture(scope="module")
def harvested(tmp_path_factory):
    """(root, model folder, text file, shard folder from `mdlcodec harvest ... --json`, its JSON)."""
    root = tmp_path_factory.mktemp("harvest")
    model = make_model(root / "gpt2")
    text = root / "text.txt"
    text.write_text("\n\n".join(SENTS), encoding="utf-8")
    r = run("harvest", model, "--layer", 1, "-o", root / "acts", "--text", text, "--shard-tokens", 500,
            "--max-length", 32, "--json")
    assert r.exit_code == 0, r.output
    return root, model, text, root / "acts", json.loads(r.stdout)


@pytest.fixture(scope="module")
def sae(harvested):
    """A tiny SAE trained on the harvested shards (1 epoch), with codec tables."""
    from mdlcodec.models import SAEConfig, TrainConfig
    from mdlcodec.workflow import train_codec

    root, _, _, acts, _ = harvested
    ds = load_dataset(str(acts))
    train_codec(SAEConfig(arch="batchtopk", d_in=16, d_sae=32, k=4), np.asarray(ds.train), ds.test,
                TrainConfig(progress=False, epochs=2, seed=0), root / "sae")
    return root / "sae"


def test_harvest_json_and_files(harvested):
    _, _, _, acts, r = harvested
    assert r["tokens"] == N and r["d"] == 16 and r["layer"] == 1 and r["dtype"] == "float32"
    assert r["shards"] == -(-N // 500) and r["output"] == str(acts) and r["tokens_per_s"] > 0
    m = read_manifest(acts)
    assert [s["rows"] for s in m["shards"]][:-1] == [500] * (r["shards"] - 1) and m["total_tokens"] == N


def test_harvest_text_output_and_progress(harvested, tmp_path):
    _, model, text, _, _ = harvested
    r = run("harvest", model, "--layer", 2, "-o", tmp_path / "a", "--text", text, "--tokens", 300, "--dtype", "float16")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("300 tokens of layer 2 of gpt2 (d 16, float16) -> ") and "1 shards" in r.stdout
    assert "harvest layer 2: done, 300/300 tokens (100%)" in r.stderr and "tokens/s" in r.stderr
    assert open_shards(tmp_path / "a").dtype == np.float16


def test_data_describes_a_shard_folder(harvested):
    _, _, _, acts, _ = harvested
    r = run("data", acts)
    assert r.exit_code == 0, r.output
    assert f"{N - N // 5} train / {N // 5} test; d = 16; dtype float32" in r.output
    assert "shards: " in r.output and "hidden_states[1]" in r.output
    j = json.loads(run("data", acts, "--json").stdout)
    assert j["n_train"] + j["n_test"] == N and j["shards"]["count"] == -(-N // 500)


def test_encode_a_shard_folder_and_read_it_back(harvested, sae, tmp_path):
    _, _, _, acts, _ = harvested
    x = np.asarray(open_shards(acts))
    r = run("encode", acts, "-m", sae, "-o", tmp_path / "all.mdlc", "--chunk-size", 333, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["samples"] == N
    r = run("decode", tmp_path / "all.mdlc", "-m", sae, "-o", tmp_path / "all.npy")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "all.npy").shape == x.shape
    r = run("info", tmp_path / "all.mdlc", "-m", sae, "--against", acts, "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    mse = float(((np.load(tmp_path / "all.npy").astype(np.float64) - x) ** 2).mean())
    assert info["samples"] == N and info["mse"] == pytest.approx(mse, rel=1e-6)
    r = run("encode", acts, "--split", "test", "-m", sae, "-o", tmp_path / "test.mdlc", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["samples"] == N // 5


def _copy(acts, dst):
    import shutil

    shutil.copytree(acts, dst)
    return dst


@pytest.mark.parametrize("damage, needle", [
    (lambda f: (f / "shard-00001.npy").unlink(), "shard shard-00001.npy is missing"),
    (lambda f: (f / "shard-00000.npy").write_bytes((f / "shard-00000.npy").read_bytes()[:-40]),
     "shard shard-00000.npy is truncated"),
    (lambda f: np.save(f / "shard-00002.npy", np.zeros((500, 8), np.float32)), "shard shard-00002.npy has shape"),
    (lambda f: np.save(f / "shard-00002.npy", np.zeros((499, 16), np.float32)), "shard shard-00002.npy has 499 rows"),
    (lambda f: np.save(f / "shard-00002.npy", np.zeros((500, 16), np.float16)), "has dtype float16"),
])
def test_bad_shards_are_one_line(harvested, sae, tmp_path, damage, needle):
    _, _, _, acts, _ = harvested
    bad = _copy(acts, tmp_path / "bad")
    damage(bad)
    for args in (("data", bad), ("encode", bad, "-m", sae, "-o", tmp_path / "x.mdlc"),
                 ("train", bad, "--width", 8, "--k", 2, "-o", tmp_path / "m")):
        r = run(*args)
        assert r.exit_code == 1
        one_line_error(r, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_bad_harvests_are_one_line_and_write_nothing(harvested, tmp_path):
    _, model, text, _, _ = harvested
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "out"
    cases = [
        (("harvest", model, "--layer", 3, "-o", out, "--text", text), "0 (the embeddings) to 2: choose another --layer"),
        (("harvest", model, "--layer", 1, "-o", out), "no text"),
        (("harvest", model, "--layer", 1, "-o", out, "--text", empty), "holds no tokens"),
        (("harvest", broken, "--layer", 1, "-o", out, "--text", text), f"cannot load a tokenizer from {broken}"),
        (("harvest", tmp_path / "nope", "--layer", 1, "-o", out, "--text", text), "no such model folder"),
        (("harvest", model, "--layer", 1, "-o", out, "--text", text, "--device", "cuda:7"), "device"),
        (("harvest", model, "--layer", 1, "-o", out, "--text", text, "--max-norm-ratio", 1e-9),
         "the norm cut left no tokens: all 2"),
        (("harvest", model, "--layer", 1, "-o", out, "--text", text, "--max-norm-ratio", 0), "max_norm_ratio is 0"),
    ]
    for args, needle in cases:
        r = run(*args)
        if "cuda" in args and r.exit_code == 0:  # a machine with 8 GPUs
            continue
        assert r.exit_code == 1, r.output
        one_line_error(r, needle)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty.txt"], args


def test_harvest_norm_cut_is_said_and_recorded(harvested, tmp_path):
    _, model, text, _, _ = harvested
    r = run("harvest", model, "--layer", 1, "-o", tmp_path / "a", "--text", text, "--max-length", 32,
            "--max-norm-ratio", 1.1)
    assert r.exit_code == 0, r.output
    c = read_manifest(tmp_path / "a")["norm_cut"]
    assert f"left out {c['dropped_tokens']:,} tokens of norm above" in r.stdout and c["dropped_tokens"] > 0
    assert read_manifest(tmp_path / "a")["total_tokens"] == N - c["dropped_tokens"]


def test_existing_output_needs_force(harvested, tmp_path):
    _, model, text, _, _ = harvested
    (tmp_path / "out").mkdir()
    r = run("harvest", model, "--layer", 1, "-o", tmp_path / "out", "--text", text, "--tokens", 50)
    assert r.exit_code == 1
    one_line_error(r, "pass --force")
    r = run("harvest", model, "--layer", 1, "-o", tmp_path / "out", "--text", text, "--tokens", 50, "--force", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["tokens"] == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
