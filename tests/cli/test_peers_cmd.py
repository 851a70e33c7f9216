"""`mdlcodec import` and `mdlcodec export` (issue 11): every peer folder in, through fit-codec, encode
and decode; an mdlcodec SAE out to SAELens and back; bad input as one line, exit 1, nothing written."""

from __future__ import annotations

import fractions
import json
import pickle

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec
from mdlcodec.models import SAEConfig, load_sae, make_sae, save_sae
from tests.cli.helpers import one_line_error, run, run_process
from tests.conftest import peer_folders
from tests.models import peer_helpers as ph
from tests.models.helpers import assert_latents_match_up_to_ties, selection_boundary
from tests.models.test_peers import BAD

pytestmark = pytest.mark.usefixtures("one_thread")

PEERS = peer_folders()


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


@pytest.mark.parametrize("name", PEERS)
def test_import_every_peer_folder(peers_dir, name, tmp_path):
    folder, out = peers_dir / name, tmp_path / "model"
    r = run("import", folder, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["format"] == name.split("-")[0] and report["model"] == str(out)
    assert report["d_in"] == 784 and report["d_sae"] == 256
    sae = load_sae(out)
    assert sae.cfg.arch == report["architecture"]
    e = np.load(folder / "expected.npz")
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(e["x"])).numpy()
    assert_latents_match_up_to_ties(z, e["latents"], selection_boundary(sae))
    assert ("warning:" in r.output) == bool(report["warnings"])
    text = run("import", folder, "-o", tmp_path / "again")
    assert text.exit_code == 0 and f"-> mdlcodec {sae.cfg.arch} SAE" in text.stdout


@pytest.mark.parametrize("name", ["saelens-jumprelu", "dictionary_learning-batchtopk", "sparsify-topk"])
def test_imported_models_fit_encode_and_decode_mnist(peers_dir, mnist_dir, name, tmp_path):
    if name not in PEERS:
        pytest.skip(f"{name} is not among the peers' folders")
    model = tmp_path / "model"
    assert run("import", peers_dir / name, "-o", model).exit_code == 0
    r = run("fit-codec", model, f"mnist:{mnist_dir}", "--max-mse", 0.05, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["quantised_test_mse"] <= 0.05
    x = np.load(peers_dir / name / "expected.npz")["x"]
    np.save(tmp_path / "x.npy", x)
    assert run("encode", tmp_path / "x.npy", "-m", model, "-o", tmp_path / "x.mdlc").exit_code == 0
    assert run("decode", tmp_path / "x.mdlc", "-m", model, "-o", tmp_path / "r.npy").exit_code == 0
    codec = Codec.load(model)
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), codec.reconstruct(codec.latents(x)))


def test_export_to_saelens_and_import_back(toy_model_dir, tmp_path):
    model, ds = toy_model_dir
    r = run("export", model, "--to", "saelens", "-o", tmp_path / "sl", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"model": str(model), "format": "saelens", "output": str(tmp_path / "sl"),
                                    "architecture": "jumprelu", "from_architecture": "batchtopk"}
    assert sorted(p.name for p in (tmp_path / "sl").iterdir()) == ["cfg.json", "sae_weights.safetensors"]
    r = run("import", tmp_path / "sl", "-o", tmp_path / "back")
    assert r.exit_code == 0, r.output
    ours, back = load_sae(model), load_sae(tmp_path / "back")
    x = torch.from_numpy(np.ascontiguousarray(ds.test, np.float32))
    with torch.no_grad():
        z0, z1 = ours.encode(x), back.encode(x)
        np.testing.assert_allclose(back.decode(z1).numpy(), ours.decode(z0).numpy(), rtol=1e-5, atol=1e-5)
    z0 = z0 / ours.cfg.input_scale  # the export divides the latents by the scale (unit-norm decoder rows)
    assert_latents_match_up_to_ties(z1.numpy(), z0.numpy(), selection_boundary(back))
    assert run("fit-codec", tmp_path / "back", "toy:n=3000,n_features=24,d=12,l0=2").exit_code == 0
    text = run("export", model, "-o", tmp_path / "sl2")
    assert text.exit_code == 0 and "SAELens jumprelu SAE" in text.stdout


@pytest.mark.parametrize("what", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(what, tmp_path):
    write, words = BAD[what]
    write(tmp_path / "peer")
    before = _files(tmp_path / "peer")
    r = run("import", tmp_path / "peer", "-o", tmp_path / "out")
    assert r.exit_code == 1
    one_line_error(r, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peer"]  # no output, no temporary folder
    assert _files(tmp_path / "peer") == before


def test_a_pickle_torch_refuses_is_one_line_on_stderr(tmp_path):
    """Issue 19 §9: torch.load(weights_only=True) warns in two lines (a pickle protocol it may not read)
    before it refuses a plain pickle; the user sees the error line alone."""
    d = ph.write_dictionary_learning(tmp_path / "peer", "AutoEncoder")
    with open(d / "ae.pt", "wb") as f:
        pickle.dump({"encoder.weight": fractions.Fraction(1, 2)}, f, protocol=4)  # not torch.save's format
    r = run_process("import", d, "-o", tmp_path / "out")
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"error: cannot read {d / 'ae.pt'} as a state dict of tensors (torch.load with "
                               "weights_only=True refused it"), r.stderr
    assert not (tmp_path / "out").exists()


def test_import_refusals(tmp_path):
    one_line_error(run("import", tmp_path / "nowhere", "-o", tmp_path / "out"), "does not exist")
    src = ph.write_saelens(tmp_path / "sl", "topk")
    one_line_error(run("import", src, "-o", src, "--force"), "source folder")
    one_line_error(run("import", src, "-o", tmp_path / "out", "--no-threshold"), "AutoEncoderTopK")
    assert run("import", src, "-o", tmp_path / "out").exit_code == 0
    before = _files(tmp_path / "out")
    r = run("import", ph.write_dictionary_learning(tmp_path / "ae", "AutoEncoder"), "-o", tmp_path / "out")
    assert r.exit_code == 1
    one_line_error(r, "--force")
    assert _files(tmp_path / "out") == before
    assert run("import", tmp_path / "ae", "-o", tmp_path / "out", "--force").exit_code == 0
    assert load_sae(tmp_path / "out").cfg.arch == "relu"
    one_line_error(run("import", tmp_path / "out", "-o", tmp_path / "out2"), "mdlcodec model already")
    dl = ph.write_dictionary_learning(tmp_path / "dl", "BatchTopKSAE")
    one_line_error(run("import", dl, "-o", tmp_path / "out3", "--no-threshold"), "batch top-k")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_export_refusals(toy_model_dir, tmp_path):
    model, _ = toy_model_dir
    one_line_error(run("export", tmp_path / "nowhere", "-o", tmp_path / "out"), "does not exist")
    save_sae(make_sae(SAEConfig("tree", 4, 6, k=2), parents=np.array([-1, 0, 0, -1, 3, 3])), tmp_path / "tree")
    one_line_error(run("export", tmp_path / "tree", "-o", tmp_path / "out"), "no counterpart")
    assert not (tmp_path / "out").exists()
    one_line_error(run("export", model, "-o", model, "--force"), "own folder")
    assert run("export", model, "-o", tmp_path / "out").exit_code == 0
    before = _files(tmp_path / "out")
    one_line_error(run("export", model, "-o", tmp_path / "out"), "--force")
    assert _files(tmp_path / "out") == before
    assert run("export", model, "-o", tmp_path / "out", "--force").exit_code == 0
    assert _files(tmp_path / "out") == before  # the same SAE gives the same files
    (tmp_path / "file").write_text("x")
    one_line_error(run("export", model, "-o", tmp_path / "file"), "not a directory")


def test_export_names_the_model_and_hook_of_its_harvested_activations(toy_model_dir, tmp_path):
    """--activations: the shard folder's manifest gives SAELens' metadata.model_name and hook_name."""
    from mdlcodec.data.shards import ShardWriter

    model, ds = toy_model_dir
    acts = tmp_path / "acts"
    acts.mkdir()
    w = ShardWriter(acts, d=ds.d)
    w.add(ds.train)
    w.finish(model={"name": "SmolLM2-135M", "num_layers": 30}, layer=15)
    r = run("export", model, "-o", tmp_path / "sl", "--activations", acts)
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "sl" / "cfg.json").read_text())["metadata"]
    assert meta["model_name"] == "SmolLM2-135M" and meta["hook_name"] == "blocks.15.hook_resid_pre"
