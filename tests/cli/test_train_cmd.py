"""`mdlcodec train` through the command line: flat SAEs, tree SAEs (from a parents file or grown from
a flat model) and a tree SAE's codec, bad input as one error line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.data import load_dataset
from mdlcodec.models import SAEConfig, evaluate, load_sae, make_sae, save_sae
from tests.models.helpers import HIERARCHY_TOY, _obeys, _oracle

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(*args):
    return CliRunner().invoke(cli, ["train", *args])


# --- flat SAEs ------------------------------------------------------------------------------------------

def test_cli_trains_saves_and_prints_json(tmp_path):
    out = tmp_path / "model"
    r = _run("toy:n=2000", "--width", "32", "--k", "3", "--epochs", "2", "--seed", "3", "--json", "-o", str(out))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["config"]["architecture"] == "batchtopk" and report["epochs_run"] == 2
    assert set(report["test"]) >= {"mse", "fvu", "l0_mean", "l0_std", "alive", "dead_fraction"}
    sae = load_sae(out)
    assert sae.cfg.d_sae == 32 and sae.cfg.threshold == report["config"]["threshold"]
    ds = load_dataset("toy:n=2000")
    assert evaluate(sae, ds.test)["mse"] == pytest.approx(report["test"]["mse"], rel=1e-9)


def test_cli_plain_output_names_the_figures(tmp_path):
    r = _run("toy:n=2000", "--arch", "relu", "--l1", "0.1", "--width", "16", "--epochs", "1",
             "--no-normalize", "-o", str(tmp_path / "m"))
    assert r.exit_code == 0, r.output
    assert "test: MSE" in r.stdout and "FVU" in r.stdout and "L0" in r.stdout and "alive" in r.stdout
    assert load_sae(tmp_path / "m").cfg.input_scale == 1.0


@pytest.mark.parametrize("args, msg", [
    (["toy", "--arch", "gated", "--width", "8", "--k", "2"], "unknown architecture 'gated'"),
    (["toy", "--width", "0", "--k", "2"], "width"),
    (["toy", "--width", "-3", "--k", "2"], "width"),
    (["toy", "--width", "8", "--k", "9"], "k <= width"),
    (["toy", "--width", "8"], "needs k"),
    (["toy", "--arch", "relu", "--width", "8"], "--l1"),
    (["does/not/exist.npy", "--width", "8", "--k", "2"], "exist.npy"),
    (["toy:n=200", "--width", "8", "--k", "2", "--epochs", "0"], "positive"),
])
def test_cli_bad_input_is_one_line_without_traceback(tmp_path, args, msg):
    r = _run(*args, "-o", str(tmp_path / "m"))
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cli_cuda_without_cuda(tmp_path):
    r = _run("toy", "--width", "8", "--k", "2", "--device", "cuda", "-o", str(tmp_path / "m"))
    assert r.exit_code == 1 and "CUDA is not available" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_does_not_touch_its_input(tmp_path):
    data = tmp_path / "acts.npy"
    np.save(data, np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))
    before = data.read_bytes()
    r = _run(str(data), "--width", "8", "--k", "2", "--epochs", "1", "-o", str(tmp_path / "m"))
    assert r.exit_code == 0, r.output
    assert data.read_bytes() == before and load_sae(tmp_path / "m").cfg.d_in == 8


# --- tree SAEs ------------------------------------------------------------------------------------------

def test_cli_grows_a_tree_from_a_flat_model_and_fine_tunes_it(tmp_path, hierarchy_toy):
    save_sae(_oracle(hierarchy_toy), tmp_path / "flat")
    out = tmp_path / "tree"
    r = _run(HIERARCHY_TOY, "--arch", "tree", "--width", "64", "--grow-from", str(tmp_path / "flat"),
             "--epochs", "1", "--json", "-o", str(out))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["config"]["architecture"] == "tree" and report["forest"] == {"children": 8, "depth": 1}
    sae = load_sae(out)
    truth = hierarchy_toy.truth.parents
    children = np.flatnonzero(truth >= 0)
    assert (sae.parents.numpy()[children] == truth[children]).mean() >= 0.9
    z = sae.encode(torch.from_numpy(hierarchy_toy.test))
    assert _obeys(z, sae.parents.numpy()) and (z[:, children] > 0).any()


def test_cli_trains_a_tree_from_a_parents_file(tmp_path):
    forest = tmp_path / "forest.json"
    forest.write_text(json.dumps({"parents": [-1, 0, 1, -1, 3, -1, -1, -1]}))
    r = _run("toy:n=600,d=8,n_features=8", "--arch", "tree", "--width", "8", "--k", "2", "--parents", str(forest),
             "--epochs", "1", "-o", str(tmp_path / "m"))
    assert r.exit_code == 0, r.output
    assert "forest: 3 children of 8 features, depth 2" in r.stdout
    assert load_sae(tmp_path / "m").parents.tolist() == [-1, 0, 1, -1, 3, -1, -1, -1]


@pytest.mark.parametrize("forest, args, msg", [
    (None, [], "needs its forest"),
    ([-1, 0, 0, 0], ["--grow-from", "{tmp}/flat"], "not both"),
    ([-1, 0, 0], [], "d_sae=4"),
    ([1, 2, 0, -1], [], "cycle"),
    ("{not json", [], "cannot read the forest"),
    ({"kids": [1]}, [], "JSON list of integers"),
    ([-1, 0, "a", 0], [], "JSON list of integers"),
    (None, ["--parents", "{tmp}/nowhere.json"], "nowhere.json"),
    (None, ["--grow-from", "{tmp}/nowhere"], "nowhere does not exist"),
    (None, ["--grow-from", "{tmp}/flat", "--width", "5"], "--width 5 differs from the width 4"),
    ([-1, 0, 0, 0], ["--arch", "batchtopk"], "are for --arch tree"),
])
def test_cli_bad_tree_input_is_one_line_without_traceback(tmp_path, forest, args, msg):
    save_sae(make_sae(SAEConfig("batchtopk", 8, 4, k=2)), tmp_path / "flat")
    given = []
    if forest is not None:
        (tmp_path / "f.json").write_text(forest if isinstance(forest, str) else json.dumps(forest))
        given = ["--parents", str(tmp_path / "f.json")]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = _run("toy:n=200,d=8", "--arch", "tree", "--width", "4", "--k", "2", *given, *args, "-o", str(tmp_path / "m"))
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "m").exists()


def codec_sae(model_dir):
    from mdlcodec.models import load_sae
    return load_sae(model_dir)


def test_tree_sae_codes_with_its_forest(tmp_path):
    """A tree SAE's codec uses its forest as a tree: children are coded only under active parents."""
    ds = load_dataset("toy:n_features=32,d=16,l0=3,hierarchy=8,n=4000")
    parents = ds.truth.parents
    (tmp_path / "parents.json").write_text(json.dumps(parents.tolist()))
    # A coarse step rounds some parents' values to bin 0: their children must go with them.
    r = CliRunner().invoke(cli, ["train", ds.spec, "--arch", "tree", "--width", "32", "--k", "3", "--epochs", "5",
                                 "--parents", str(tmp_path / "parents.json"), "-o", str(tmp_path / "tree"), "--json",
                                 "--codec-step", "3"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["codec"]["hierarchy"]["kind"] == "tree"
    assert report["codec"]["hierarchy"]["edges"] == int((parents >= 0).sum())
    from mdlcodec.codec import Codec
    codec = Codec.load(tmp_path / "tree")
    data = codec.encode(ds.test)
    codes = codec.decode_latents(data)
    assert codes == codec.latents(ds.test, 4096)
    dense = codes.to_dense() != 0
    kids = np.flatnonzero(parents >= 0)
    assert not (dense[:, kids] & ~dense[:, parents[kids]]).any()
    unpruned = codec.quantiser.quantise(Codec.sae_encoder(codec_sae(tmp_path / "tree"))(ds.test)).to_dense() != 0
    assert (unpruned[:, kids] & ~unpruned[:, parents[kids]]).any()  # the step did round some parents away
    bits = codec.chunk_coder.ideal_bits(codes)["activity"]
    assert 8 * len(data) > bits  # no child was coded at the 24-bit price of an impossible event
    assert bits / codes.n < codec.with_hierarchy(None).chunk_coder.ideal_bits(codes)["activity"] / codes.n + 0.5


# --- objective mdl --------------------------------------------------------------------------------------

def test_cli_objective_mdl_trains_jumprelu_and_records_the_objective(tmp_path):
    out = tmp_path / "mdl"
    r = _run("toy:n=2000", "--arch", "jumprelu", "--width", "16", "--objective", "mdl", "--beta", "0.05",
             "--epochs", "2", "--json", "-o", str(out))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["config"]["objective"] == "mdl" and load_sae(out).cfg.objective == "mdl"


def test_cli_start_from_fine_tunes_a_batchtopk_model_as_jumprelu(tmp_path):
    src, out = tmp_path / "btk", tmp_path / "ft"
    assert _run("toy:n=2000", "--width", "16", "--k", "3", "--epochs", "2", "--json", "-o", str(src)).exit_code == 0
    r = _run("toy:n=2000", "--arch", "jumprelu", "--width", "16", "--objective", "mdl", "--max-mse", "10",
             "--epochs", "1", "--start-from", str(src), "--json", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert load_sae(out).cfg.arch == "jumprelu"


@pytest.mark.parametrize("args, words", [
    (["--arch", "relu", "--l1", "0.1", "--objective", "mdl"], "--objective mdl needs an architecture with a threshold or k"),
    (["--arch", "tree", "--k", "2", "--objective", "mdl"], "--objective mdl needs an architecture with a threshold or k"),
    (["--arch", "jumprelu"], "only with objective mdl"),
    (["--arch", "jumprelu", "--objective", "mdl"], "--objective mdl needs --max-mse or --max-fvu (beta is then steered"),
])
def test_cli_objective_mdl_refusals_are_one_line(tmp_path, args, words):
    r = _run("toy:n=2000", "--width", "16", *args, "-o", str(tmp_path / "m"))
    assert r.exit_code != 0 and words in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_cli_rate_flags_need_objective_mdl(tmp_path):
    r = _run("toy:n=2000", "--width", "16", "--k", "2", "--beta", "1", "-o", str(tmp_path / "m"))
    assert r.exit_code == 2 and "--beta and --rate-step are for --objective mdl" in r.output
