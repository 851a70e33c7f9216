"""Frictions a new user met (issue 20 §5), each through the command line."""

from __future__ import annotations

import pytest

from mdlcodec.models.train import TrainConfig
from tests.cli.helpers import one_line_error, run
from tests.conftest import peer_folders


@pytest.mark.parametrize("name", [n for n in peer_folders() if n in ("saelens-topk", "sparsify-topk",
                                                                     "dictionary_learning-topk")])
def test_a_peer_folder_given_as_a_model_says_to_import_it(peers_dir, name, tmp_path):
    folder = peers_dir / name
    for args in (("measure", folder, "toy", "--max-fvu", "0.3"),
                 ("encode", "toy", "-m", folder, "-o", tmp_path / "x.mdlc")):
        r = run(*args)
        line = one_line_error(r, f"holds a {name.split('-')[0]} SAE, not an mdlcodec model")
        assert f"mdlcodec import {folder} -o MODEL" in line
    assert not (tmp_path / "x.mdlc").exists()


def test_train_help_shows_its_defaults():
    text = " ".join(run("train", "--help").stdout.split())
    for flag, value in (("--epochs", TrainConfig.epochs), ("--lr", TrainConfig.lr), ("--batch-size", TrainConfig.batch_size)):
        after = text[text.index(flag + " "):]
        assert f"[default: {value}]" in after[:300], (flag, after[:300])


def test_the_dictionary_learning_warning_names_the_flag(peers_dir, tmp_path):
    if "dictionary_learning-topk" not in peer_folders():
        pytest.skip("../shared/peers/dictionary_learning-topk is absent")
    r = run("import", peers_dir / "dictionary_learning-topk", "-o", tmp_path / "m")
    assert r.exit_code == 0, r.output
    assert "--no-threshold" in r.output and "use_threshold=False" not in r.output


def test_mnist_is_found_beside_the_checkout_from_any_directory(monkeypatch, tmp_path):
    from pathlib import Path

    from mdlcodec.data import mnist_dir_default

    checkout_mnist = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist").resolve()
    if not checkout_mnist.is_dir():
        pytest.skip(f"no MNIST beside this checkout ({checkout_mnist})")
    monkeypatch.delenv("MDLCODEC_MNIST", raising=False)
    monkeypatch.chdir(tmp_path)
    assert mnist_dir_default() == checkout_mnist
    r = run("data", "mnist", "--json")
    assert r.exit_code == 0, r.output


def test_demo_names_no_deleted_path_and_labels_the_activity_entropy(tmp_path):
    r = run("demo")
    assert r.exit_code == 0, r.output
    assert "temporary file (removed on exit" in r.stdout and "/tmp" not in r.stdout
    line = next(ln for ln in r.stdout.splitlines() if "true activity entropy" in ln)
    assert "activity only" in line and "the payload's activity" in line
    kept = run("demo", "-o", tmp_path / "d")
    assert kept.exit_code == 0 and str(tmp_path / "d") in kept.stdout
    # with -o the demo draws (issue 20 §5): the SAE against PCA at four tolerances, the SAE shorter on this toy
    assert (tmp_path / "d" / "rd.png").read_bytes()[:4] == b"\x89PNG" and "rate-distortion" in kept.stdout
    assert "rd.png" not in r.stdout


@pytest.mark.parametrize("command", ["train", "fit-codec", "measure", "select", "bench"])
def test_every_command_with_a_tolerance_takes_max_mse_and_max_fvu(command):
    text = run(command, "--help").stdout
    assert "--max-mse" in text and "--max-fvu" in text


def test_fit_codec_max_fvu_is_max_mse_times_the_test_variance(toy_model_dir, tmp_path):
    import json
    import shutil

    from mdlcodec.measurement.compare import mean_variance

    model, ds = toy_model_dir
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(model, a)
    shutil.copytree(model, b)
    spec = "toy:n=3000,n_features=24,d=12,l0=2"
    by_fvu = run("fit-codec", a, spec, "--max-fvu", "0.8", "--json")
    by_mse = run("fit-codec", b, spec, "--max-mse", str(0.8 * mean_variance(ds.test)), "--json")
    assert by_fvu.exit_code == 0 and by_mse.exit_code == 0, by_fvu.output + by_mse.output
    assert json.loads(by_fvu.stdout)["step"] == pytest.approx(json.loads(by_mse.stdout)["step"], rel=1e-6)
    both = run("fit-codec", a, spec, "--max-fvu", "0.8", "--max-mse", "0.1")
    assert both.exit_code == 2 and "not both" in both.output


def test_hierarchy_says_which_pairs_exclude_and_draws_every_pair_on_one_scale(tmp_path):
    """The strongest pair by mutual information may never fire together: the table and JSON say
    "exclude"; the PNG draws --top pairs (not 8 of them) with a colour bar."""
    import json

    import numpy as np
    from matplotlib.image import imread

    from mdlcodec.data import make_toy
    from mdlcodec.data.toy import ToyConfig

    ds = make_toy(ToyConfig(n_features=16, d=16, l0=3, n=2000, seed=1))  # d 16: a 4 x 4 "image"
    x = tmp_path / "x.npy"
    np.save(x, np.concatenate([ds.train, ds.test]))
    assert run("train", x, "--width", "16", "--k", "3", "--epochs", "3", "-o", tmp_path / "m").exit_code == 0
    r = run("hierarchy", tmp_path / "m", x, "--top", "12", "--json")
    assert r.exit_code == 0, r.output
    edges = json.loads(r.stdout)["edges"]
    for e in edges:
        assert e["relation"] == ("co-occur" if e["p_child_given_parent"] > e["p_child_given_not_parent"] else "exclude")
    text = run("hierarchy", tmp_path / "m", x, "--top", "12").stdout
    assert "relation" in text and ("exclude" in text or "co-occur" in text)
    heights = {}
    for top in (3, 12):
        png = tmp_path / f"h{top}.png"
        assert run("hierarchy", tmp_path / "m", x, "--top", str(top), "--png", png).exit_code == 0
        heights[top] = imread(png).shape[0]
    assert heights[12] > 3 * heights[3]  # every pair drawn, not 8 at most
