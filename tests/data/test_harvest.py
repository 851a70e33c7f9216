"""Harvesting a transformer's hidden states into shards: tiny models built offline (tests/data/lm_helpers)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("transformers", reason="harvest needs transformers (the [lm] extra); not installed")

from mdlcodec.core.errors import DataError, MdlcodecError, ModelError
from mdlcodec.data import load_dataset, load_rows
from mdlcodec.data.harvest import harvest
from mdlcodec.data.shards import open_shards, read_manifest
from tests.data.lm_helpers import make_model, reference_rows, sentences

pytestmark = pytest.mark.usefixtures("one_thread")
SENTS = sentences(40)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    return {"gpt2": make_model(root / "gpt2"),  # the tokenizer adds nothing: harvest prepends <s>
            "gpt2_bos_eos": make_model(root / "gpt2_bos_eos", template="bos_eos"),
            "bert": make_model(root / "bert", kind="bert")}


@pytest.fixture
def text(tmp_path):
    p = tmp_path / "text.txt"
    p.write_text("\n\n".join(SENTS) + "\n", encoding="utf-8")
    return p


def n_words(texts) -> int:
    return sum(len(t.split()) for t in texts)


@pytest.mark.parametrize("kind, prepend", [("gpt2", True), ("gpt2_bos_eos", False), ("bert", False)])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_rows_are_the_hidden_states_at_real_tokens(models, text, tmp_path, kind, prepend, layer):
    out = tmp_path / "acts"
    r = harvest(models[kind], layer, out, [text], max_length=12, batch_size=3, shard_tokens=50, progress=False)
    x = open_shards(out)
    assert r["tokens"] == len(x) == n_words(SENTS)  # BOS/CLS, EOS/SEP and padding all dropped
    ref = reference_rows(models[kind], ["\n\n".join(SENTS)], layer, 12, prepend)
    assert ref.shape == x.shape == (n_words(SENTS), 16)
    np.testing.assert_allclose(x[:], ref, rtol=1e-5, atol=1e-5)
    assert r["early_stop"] == (layer < 2)  # stopped at the layer below the last, and still the same rows


def test_shards_and_manifest(models, text, tmp_path):
    out = tmp_path / "acts"
    r = harvest(models["gpt2"], 1, out, [text], max_length=16, batch_size=4, shard_tokens=64, progress=False)
    m = read_manifest(out)
    n = n_words(SENTS)
    assert [s["rows"] for s in m["shards"]] == [64] * (n // 64) + ([n % 64] if n % 64 else [])
    assert m["total_tokens"] == n == r["tokens"] and r["shards"] == len(m["shards"]) and m["shard_tokens"] == 64
    assert m["d"] == 16 and m["dtype"] == "float32" and m["layer"] == 1 and m["hook_point"].startswith("hidden_states[1]")
    assert m["model"]["path"] == str(models["gpt2"].resolve()) and m["model"]["name"] == "gpt2"
    assert m["model"]["num_layers"] == 2 and m["model"]["class"] == "GPT2Model"
    assert m["sources"] == [{"path": str(text), "kind": "txt", "documents": 1, "tokens": n}]
    assert m["mdlcodec_version"] and "<s>" in m["first_position"] and m["max_length"] == 16
    for s in m["shards"]:
        assert np.load(out / s["file"]).shape == (s["rows"], 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts", "text.txt"]  # no temporary folder left


def test_token_limit_float16_and_several_sources(models, tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "folder", tmp_path / "folder" / "sub"
    a.write_text("\n\n".join(SENTS[:10]))
    c.mkdir(parents=True)
    (b / "x.txt").write_text("\n\n".join(SENTS[10:20]))
    (c / "y.txt").write_text("\n\n".join(SENTS[20:]))
    (b / "ignored.md").write_text("not text")
    full = harvest(models["gpt2"], 2, tmp_path / "all", [a, b], max_length=10, progress=False)
    assert full["tokens"] == n_words(SENTS)
    assert [(s["path"], s["tokens"]) for s in read_manifest(tmp_path / "all")["sources"]] == \
        [(str(a), n_words(SENTS[:10])), (str(c / "y.txt"), n_words(SENTS[20:])), (str(b / "x.txt"), n_words(SENTS[10:20]))]
    r = harvest(models["gpt2"], 2, tmp_path / "some", [a, b], tokens=57, max_length=10, dtype="float16",
                shard_tokens=20, progress=False)
    x = open_shards(tmp_path / "some")
    assert r["tokens"] == len(x) == 57 and x.dtype == np.float16 and [s["rows"] for s in
                                                                         read_manifest(tmp_path / "some")["shards"]] == [20, 20, 17]
    np.testing.assert_allclose(x[:].astype(np.float32), open_shards(tmp_path / "all")[:57], rtol=1e-3, atol=1e-3)
    assert not r["text_ran_out"] and harvest(models["gpt2"], 2, tmp_path / "more", [a], tokens=10_000,
                                             progress=False)["text_ran_out"]


def test_harvested_folder_is_a_dataset_spec(models, text, tmp_path):
    out = tmp_path / "acts"
    harvest(models["bert"], 1, out, [text], shard_tokens=30, progress=False)
    n = n_words(SENTS)
    ds = load_dataset(str(out))
    assert ds.train.shape == (n - n // 5, 16) and ds.test.shape == (n // 5, 16) and ds.train.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate([ds.train[:], ds.test[:]]), load_rows(str(out))[:])


def test_out_dir_refused_unless_force(models, text, tmp_path):
    out = tmp_path / "acts"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(MdlcodecError, match="exists") as e:
        harvest(models["gpt2"], 1, out, [text], progress=False)
    assert e.value.param == "overwrite" and (out / "keep").exists()
    harvest(models["gpt2"], 1, out, [text], progress=False, overwrite=True)
    assert not (out / "keep").exists() and (out / "manifest.json").exists()
    with pytest.raises(MdlcodecError, match="holds the input"):
        harvest(models["gpt2"], 1, tmp_path, [text], progress=False, overwrite=True)


@pytest.mark.parametrize("layer", [3, 7, -1])
def test_layer_out_of_range(models, text, tmp_path, layer):
    with pytest.raises(ModelError, match="out of range") as e:
        harvest(models["gpt2"], layer, tmp_path / "acts", [text], progress=False)
    assert e.value.param == "layer" and not (tmp_path / "acts").exists()
    if layer > 0:
        assert "0 (the embeddings) to 2" in str(e.value)


def test_bad_inputs_write_nothing(models, text, tmp_path):
    out = tmp_path / "acts"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    (tmp_path / "nothing").mkdir()
    cases = [
        (lambda: harvest(models["gpt2"], 1, out, [], progress=False), DataError, "no text"),
        (lambda: harvest(models["gpt2"], 1, out, [empty], progress=False), DataError, "holds no tokens"),
        (lambda: harvest(models["gpt2"], 1, out, [tmp_path / "missing.txt"], progress=False), DataError,
         "no such file"),
        (lambda: harvest(models["gpt2"], 1, out, [tmp_path / "nothing"], progress=False), DataError,
         "holds no .txt file"),
        (lambda: harvest(broken, 1, out, [text], progress=False), ModelError, "cannot load"),
        (lambda: harvest(tmp_path / "nothing", 1, out, [text], progress=False), ModelError, "cannot load"),
        (lambda: harvest(tmp_path / "no-model", 1, out, [text], progress=False), ModelError, "no such model folder"),
        (lambda: harvest(models["gpt2"], 1, out, [text], max_length=129, progress=False), ModelError,
         "exceeds the 128 positions"),
        (lambda: harvest(models["gpt2"], 1, out, [text], dtype="int8", progress=False), DataError, "dtype"),
    ]
    for call, kind, needle in cases:
        with pytest.raises(kind, match=needle) as e:
            call()
        assert "\n" not in str(e.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty.txt", "nothing", "text.txt"], needle


def test_missing_extra_is_one_line_naming_it(models, text, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an import finds where it is not installed
    with pytest.raises(MdlcodecError, match=r"optional extra: pip install 'mdlcodec\[lm\]'"):
        harvest(models["gpt2"], 1, tmp_path / "acts", [text], progress=False)
    assert not (tmp_path / "acts").exists()


def test_progress_reports_tokens_per_second(models, text, tmp_path, capsys):
    harvest(models["gpt2"], 1, tmp_path / "acts", [text], tokens=100, progress=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("harvest layer 1: done, 100/100 tokens (100%)") and "tokens/s" in err[-1]


def test_saved_dataset_with_a_text_column(models, tmp_path):
    datasets = pytest.importorskip("datasets", reason="reading saved datasets needs datasets (the [lm] extra)")
    datasets.Dataset.from_dict({"text": SENTS[:15], "id": list(range(15))}).save_to_disk(str(tmp_path / "ds"))
    r = harvest(models["gpt2"], 1, tmp_path / "acts", [tmp_path / "ds"], progress=False)
    assert r["tokens"] == n_words(SENTS[:15])
    assert read_manifest(tmp_path / "acts")["sources"][0]["documents"] == 15
    np.testing.assert_allclose(open_shards(tmp_path / "acts")[:],
                               reference_rows(models["gpt2"], SENTS[:15], 1, 128, True), rtol=1e-5, atol=1e-5)
    datasets.Dataset.from_dict({"body": ["a b"]}).save_to_disk(str(tmp_path / "nocol"))
    with pytest.raises(DataError, match="no 'text' column"):
        harvest(models["gpt2"], 1, tmp_path / "acts2", [tmp_path / "nocol"], progress=False)


def test_manifest_is_json_with_the_sources(models, text, tmp_path):
    harvest(models["gpt2"], 0, tmp_path / "acts", [text], progress=False)
    m = json.loads((tmp_path / "acts" / "manifest.json").read_text())
    assert m["hook_point"] == "hidden_states[0] (embeddings)" and m["transformers_version"]


def test_norm_cut_leaves_out_massive_tokens_and_records_it(models, text, tmp_path):
    """Issue 18 §5: --max-norm-ratio R leaves out the tokens whose norm exceeds R x the median norm
    (of the first forward pass), exactly those, and says so in the manifest; a cut that keeps
    nothing is one line and writes nothing."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    harvest(models["gpt2"], 1, full, [text], max_length=12, batch_size=3, progress=False)
    x = open_shards(full)[:]
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    r = harvest(models["gpt2"], 1, cut, [text], max_length=12, batch_size=3, progress=False, max_norm_ratio=1.05)
    c = read_manifest(cut)["norm_cut"]
    assert c == r["norm_cut"] and c["max_norm_ratio"] == 1.05 and 0 < c["median_of_tokens"] < len(x)
    first = norms[:c["median_of_tokens"]]
    assert c["median_norm"] == pytest.approx(float(np.median(first)), rel=1e-6)
    kept = norms <= 1.05 * c["median_norm"]
    assert c["dropped_tokens"] == int((~kept).sum()) > 0 and r["tokens"] == int(kept.sum())
    np.testing.assert_allclose(open_shards(cut)[:], x[kept], rtol=1e-5, atol=1e-5)
    assert "norm_cut" not in read_manifest(full)
    with pytest.raises(DataError, match="left no tokens"):
        harvest(models["gpt2"], 1, tmp_path / "none", [text], max_length=12, batch_size=3, progress=False,
                max_norm_ratio=1e-9)
    assert not (tmp_path / "none").exists()
    with pytest.raises(DataError, match="max_norm_ratio"):
        harvest(models["gpt2"], 1, tmp_path / "bad", [text], progress=False, max_norm_ratio=float("nan"))
