"""Issue 10, friction 8: raw uint8 pixels (0 to 255) encoded with a model trained on [0, 1]-scale
data used to pass silently at thousands of bits per sample. The training data's RMS is saved with
the model, and `encode` warns on stderr when the input's is more than 10 times off it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mdlcodec.cli.main import cli
from mdlcodec.models.io import CFG_FILE

TOY = "toy:n=2000,n_features=24,d=12,l0=2"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny BatchTopK SAE trained 2 epochs on toy data, saved with codec tables: (model_dir, dataset)."""
    import torch

    from mdlcodec.codec.rate.precision import fit_codec
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, save_sae, train_sae

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = load_dataset(TOY)
        sae, _ = train_sae(SAEConfig(arch="batchtopk", d_in=12, d_sae=24, k=2), ds.train, None,
                           TrainConfig(progress=False, epochs=2, seed=0))
        model_dir = tmp_path_factory.mktemp("scale") / "model"
        save_sae(sae, model_dir)
        codec, _ = fit_codec(sae, ds.train, ds.test)
        codec.save_tables(model_dir)
    finally:
        torch.set_num_threads(threads)
    return model_dir, ds


def _encode(tmp_path, model, x, name):
    acts, out = tmp_path / f"{name}.npy", tmp_path / f"{name}.mdlc"
    np.save(acts, x)
    r = run("encode", acts, "-m", model, "-o", out)
    assert r.exit_code == 0, r.output
    assert out.exists()  # a warning, not a refusal
    return r


def test_training_saves_the_datas_rms_with_the_model(tiny_model):
    model, ds = tiny_model
    saved = json.loads((model / CFG_FILE).read_text())["data_rms"]
    assert saved == pytest.approx(rms(ds.train), rel=0.05)  # the rows trained on: train less its held-out part


def test_data_255_times_the_training_scale_warns_on_stderr(tiny_model, tmp_path):
    model, ds = tiny_model
    x = ds.test * 255
    r = _encode(tmp_path, model, x, "x255")
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, r.stderr
    saved = json.loads((model / CFG_FILE).read_text())["data_rms"]
    first_chunk = x[:4096]  # encode's default chunk size: the warning looks at the first chunk
    assert f"{rms(first_chunk):.4g}" in warnings[0] and f"{saved:.4g}" in warnings[0], warnings[0]
    assert f"{rms(first_chunk) / saved:.3g} times the training data's" in warnings[0]  # about 255
    assert "warning" not in r.stdout and "samples ->" in r.stdout


def test_data_far_below_the_training_scale_warns_too(tiny_model, tmp_path):
    model, ds = tiny_model
    x = ds.test / 255
    r = _encode(tmp_path, model, x, "small")
    saved = json.loads((model / CFG_FILE).read_text())["data_rms"]
    assert r.stderr.startswith("warning: ") and r.stderr.count("\n") == 1, r.stderr
    assert f"1/{saved / rms(x[:4096]):.3g} of the training data's" in r.stderr  # about 1/255


def test_ordinary_data_gives_no_warning(tiny_model, tmp_path):
    model, ds = tiny_model
    r = _encode(tmp_path, model, ds.test, "plain")
    assert "warning" not in r.output
    r = _encode(tmp_path, model, ds.test * 5, "x5")  # within 10x: no warning
    assert "warning" not in r.output


def test_a_model_saved_without_the_statistics_loads_and_encodes_silently(tiny_model, tmp_path):
    """Model folders from before the statistics were saved still load, and cannot warn."""
    import shutil

    model, ds = tiny_model
    old = tmp_path / "old"
    shutil.copytree(model, old)
    cfg = json.loads((old / CFG_FILE).read_text())
    del cfg["data_rms"]
    (old / CFG_FILE).write_text(json.dumps(cfg))
    r = _encode(tmp_path, old, ds.test * 255, "old")
    assert "warning" not in r.output
