"""Issue 10's frictions met by a new user, each through the command line as they met it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mdlcodec.codec import Codec
from mdlcodec.models.io import WEIGHTS_FILE
from tests.cli.helpers import one_line_error, run

REPO = Path(__file__).resolve().parents[2]
TOY = "toy:n=3000,n_features=24,d=12,l0=2"  # the toy_model_dir fixture's data


@pytest.fixture()
def model(toy_model_dir, tmp_path):
    """A private copy of the toy model (tests here refit its tables) and its dataset."""
    src, ds = toy_model_dir
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst, ds


def test_1_max_mse_below_the_saes_own_and_against_of_another_length(model, tmp_path):
    m, ds = model
    line = one_line_error(run("fit-codec", m, TOY, "--max-mse", 1e-9), "exceeds the bound")
    assert "--max-mse" in line  # the CLI, not the library, names the flag to change
    acts = tmp_path / "a.npy"
    np.save(acts, ds.test)
    out = tmp_path / "a.mdlc"
    assert run("encode", acts, "-m", m, "-o", out).exit_code == 0
    short = tmp_path / "short.npy"
    np.save(short, ds.test[:-3])
    one_line_error(run("info", out, "-m", m, "--against", short), "rows")


def test_2_json_on_encode_decode_hierarchy(model, tmp_path):
    m, ds = model
    acts = tmp_path / "a.npy"
    np.save(acts, ds.test)
    out = tmp_path / "a.mdlc"
    r = run("encode", acts, "-m", m, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    e = json.loads(r.output)
    assert e["samples"] == len(ds.test) and e["bytes"] == out.stat().st_size
    r = run("decode", out, "-m", m, "-o", tmp_path / "r.npy", "--json")
    assert json.loads(r.output)["samples"] == len(ds.test)
    r = run("hierarchy", m, TOY, "--json", "-o", tmp_path / "h.json")
    h = json.loads(r.output)
    assert h["d_sae"] == 24 and h["written"] == [str(tmp_path / "h.json")]


@pytest.mark.parametrize("command", ["splitting", "hierarchy-figure"])
def test_2_json_on_the_figures(command, tmp_path):
    r = run(command, "-o", tmp_path / "fig", "--n", 200, "--grid", 3, "--points-n", 200, "--json")
    assert r.exit_code == 0, r.output
    j = json.loads(r.output.strip().splitlines()[-1])
    assert len(j["grid"]) and len(j["points"]) and Path(j["written"]["png"]).is_file()


def test_3_decoded_latents_load_with_scipy(model, tmp_path):
    import scipy.sparse

    m, ds = model
    acts = tmp_path / "a.npy"
    np.save(acts, ds.test)
    out = tmp_path / "a.mdlc"
    assert run("encode", acts, "-m", m, "-o", out).exit_code == 0
    assert run("decode", out, "-m", m, "-o", tmp_path / "z.npz", "--latents").exit_code == 0
    z = scipy.sparse.load_npz(tmp_path / "z.npz")
    codec = Codec.load(m)
    codes = codec.latents(ds.test, chunk_size=4096)
    want = codes.to_scipy(codec.quantiser.step)
    assert z.shape == (len(ds.test), 24) and (z != want).nnz == 0
    assert np.array_equal(codes.to_scipy().toarray(), codes.to_dense())
    with np.load(tmp_path / "z.npz") as f:
        assert np.array_equal(f["bins"], codes.bins) and np.array_equal(f["step"], codec.quantiser.step)


def test_4_refitting_keeps_earlier_tables_and_train_needs_force(model, tmp_path):
    m, ds = model
    acts = tmp_path / "a.npy"
    np.save(acts, ds.test)
    before = tmp_path / "before.mdlc"
    assert run("encode", acts, "-m", m, "-o", before).exit_code == 0
    want = np.asarray(Codec.load(m).decode(before.read_bytes()))
    assert run("fit-codec", m, TOY, "--step", 0.5).exit_code == 0
    r = run("decode", before, "-m", m, "-o", tmp_path / "r.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), want)
    assert len(list((m / "tables").glob("*.safetensors"))) == 2
    weights = (m / WEIGHTS_FILE).read_bytes()
    args = ("train", TOY, "--width", 24, "--k", 2, "--epochs", 1, "-o", m)
    line = one_line_error(run(*args), "already holds an SAE")
    assert "--force" in line and (m / WEIGHTS_FILE).read_bytes() == weights
    assert run(*args, "--force").exit_code == 0


def test_9_encode_and_info_take_dataset_specs(model, tmp_path):
    m, ds = model
    keyed = tmp_path / "two.npz"
    np.savez(keyed, acts=ds.test, other=np.zeros((3, 5), np.float32))
    a, b = tmp_path / "a.mdlc", tmp_path / "b.mdlc"
    r = run("encode", f"{keyed}:acts", "-m", m, "-o", a)
    assert r.exit_code == 0, r.output
    assert run("encode", TOY, "--split", "test", "-m", m, "-o", b).exit_code == 0
    codec = Codec.load(m)  # the same coded rows (each file has its own random file id)
    assert codec.decode_latents(a.read_bytes()) == codec.decode_latents(b.read_bytes())
    assert len(a.read_bytes()) == len(b.read_bytes())
    r = run("info", a, "-m", m, "--against", f"{keyed}:acts", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["mse"] > 0
    one_line_error(run("encode", f"{keyed}:nope", "-m", m, "-o", tmp_path / "c.mdlc"), "nope")


def test_10_readme_commands_name_no_missing_file_and_write_under_ignored_folders():
    text = (REPO / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))
    ignored = [ln.strip().strip("/") for ln in (REPO / ".gitignore").read_text().splitlines() if ln.strip()]
    for line in blocks.splitlines():
        cmd = line.split("#")[0].strip()
        if not cmd.startswith("mdlcodec "):
            continue
        for flag, path in re.findall(r"(--parents|--grow-from|-m|--model)\s+(\S+)", cmd):
            produced = re.search(rf"-o\s+{re.escape(path)}\b", blocks) or path.startswith("runs/")
            assert produced or (REPO / path).exists(), f"README names {path} ({flag}), which nothing makes"
        for path in re.findall(r"(?:-o|--output|--out-dir|--png)\s+(\S+)", cmd):
            top = path.split("/")[0]
            assert top in ignored or path.startswith(("docs/results/", "bench/results/")), \
                f"README writes {path} outside a folder .gitignore names"


# Friction 11 (SIGTERM during encode leaves a temporary file): tests/cli/test_untrusted_cmd.py, with SIGHUP.
