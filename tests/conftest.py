"""Fixtures shared by the tests of several layers. Keep small: a fixture that one layer's tests need
lives in that folder's conftest.py, one that one file needs in that file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models.helpers import HIERARCHY_TOY

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder ($MDLCODEC_MNIST, else ../shared/data/mnist from the repo root); skips if absent."""
    d = Path(os.environ.get("MDLCODEC_MNIST") or REPO_ROOT.parent / "shared" / "data" / "mnist")
    if not any((d / n).is_file() for n in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
        pytest.skip(f"MNIST test images not found in {d} (set MDLCODEC_MNIST)")
    return d


def peers_root() -> Path:
    """Where the peers' saved SAEs are: $MDLCODEC_PEERS, else ../shared/peers from the repo root."""
    return Path(os.environ.get("MDLCODEC_PEERS") or REPO_ROOT.parent / "shared" / "peers")


def peer_folders() -> list[str]:
    """The names of the folders under peers_root(), one peer's SAE each (none if it is absent)."""
    d = peers_root()
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


@pytest.fixture(scope="session")
def peers_dir() -> Path:
    """The folder of SAEs saved by the peers' own libraries (peers_root()); skips if absent."""
    d = peers_root()
    if not peer_folders():
        pytest.skip(f"peers' SAE folders not found in {d} (set MDLCODEC_PEERS)")
    return d


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory):
    """A small trained SAE on toy data, saved with codec tables: (model_dir, dataset)."""
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig
    from mdlcodec.workflow import train_codec

    ds = load_dataset("toy:n=3000,n_features=24,d=12,l0=2")
    model_dir = tmp_path_factory.mktemp("toy") / "model"
    with torch_on_one_thread():  # the same weights whichever test asks first, on any machine
        train_codec(SAEConfig(arch="batchtopk", d_in=12, d_sae=24, k=2), ds.train, ds.test,
                    TrainConfig(progress=False, epochs=4, seed=0), model_dir)
    return model_dir, ds


@contextlib.contextmanager
def torch_on_one_thread():
    """torch on one thread inside the block, its thread count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_for_the_suite():
    """Every test starts on one torch thread, as every command does (--threads 1): exact comparisons
    between the library in this process and a command run through it then sum in the same order on a
    machine with any number of cores, and no test's setting leaks into the next."""
    with torch_on_one_thread():
        yield


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module of small models: as fast, and fair to a shared 2-core machine
    (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    with torch_on_one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    """[n, 16] activations: a rank-6 signal plus small noise, with an offset (train, test); for the
    baselines and the benchmark."""
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((6, 16))
    x = (rng.standard_normal((900, 6)) * [3, 2, 1.5, 1, 0.5, 0.3]) @ basis + 0.05 * rng.standard_normal((900, 16)) + 0.7
    x = x.astype(np.float32)
    return x[:700], x[700:]


@pytest.fixture(scope="module")
def hierarchy_toy():
    """The toy model with a planted hierarchy (tree SAEs: tests/models/test_tree.py and the CLI tests)."""
    from mdlcodec.data import load_dataset

    return load_dataset(HIERARCHY_TOY)
