"""--device on every command that runs the SAE's matmul (train, fit-codec, encode, measure, select):
cpu works through each and reaches the encoder; a device this machine lacks, or no device at all,
is one error line. (A CUDA run needs a GPU: tests/models/test_train.py::test_training_on_cuda.)"""

from __future__ import annotations

import json

import pytest
import torch

from mdlcodec.codec import Codec
from tests.cli.helpers import one_line_error, run

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = "toy:n_features=8,d=8,l0=1,alpha=0,n=600"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of cuda where there is none")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "sae"
    r = run("train", TOY, "--width", "8", "--k", "2", "--epochs", "2", "--device", "cpu", "--json", "-o", out)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def devices(monkeypatch):
    """The device every SAE encoder was built for during the test."""
    seen, real = [], Codec.sae_sparse_encoder

    def record(sae, device="cpu"):
        seen.append(device)
        return real(sae, device)

    monkeypatch.setattr(Codec, "sae_sparse_encoder", staticmethod(record))
    return seen


def _commands(model, tmp_path, device):
    return {
        "fit-codec": ["fit-codec", model, TOY, "--device", device, "--json"],
        "encode": ["encode", TOY, "--split", "test", "-m", model, "-o", tmp_path / "t.mdlc", "--device", device],
        "measure": ["measure", model, TOY, "--max-fvu", "0.9", "--no-pca", "--device", device, "--json"],
        "select": ["select", TOY, "--tol", "0.5", "--widths", "4", "--epochs", "1", "--no-pca", "--device", device,
                   "--json", "-o", tmp_path / "run"],
    }


@pytest.mark.parametrize("command", ["fit-codec", "encode", "measure", "select"])
def test_cpu_reaches_the_encoder(model, tmp_path, devices, command):
    r = run(*_commands(model, tmp_path, "cpu")[command])
    assert r.exit_code == 0, r.output
    assert devices and set(devices) == {"cpu"}


@pytest.mark.parametrize("command", ["fit-codec", "encode", "measure", "select", "train"])
@pytest.mark.parametrize("device, needle", [("tpu", "unknown device 'tpu'"),
                                            pytest.param("cuda:3", "CUDA is not available", marks=NO_CUDA)])
def test_a_device_not_here_is_one_line(model, tmp_path, command, device, needle):
    args = (["train", TOY, "--width", "8", "--k", "2", "--device", device, "-o", tmp_path / "t"] if command == "train"
            else _commands(model, tmp_path, device)[command])
    one_line_error(run(*args), needle)
    assert not (tmp_path / "t.mdlc").exists() and not (tmp_path / "t").exists()


def test_codec_encoder_refuses_an_unknown_device(model):
    from mdlcodec.core.errors import ModelError
    from mdlcodec.models import load_sae

    with pytest.raises(ModelError, match="unknown device 'tpu'"):
        Codec.sae_sparse_encoder(load_sae(model), "tpu")
    assert json.loads(run("fit-codec", model, TOY, "--device", "cpu", "--json").stdout)["step"] > 0
