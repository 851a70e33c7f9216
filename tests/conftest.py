"""Shared fixtures. Keep small: each contributor adds only what several test files need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder ($MDLCODEC_MNIST, else ../shared/data/mnist from the repo root); skips if absent."""
    d = Path(os.environ.get("MDLCODEC_MNIST") or REPO_ROOT.parent / "shared" / "data" / "mnist")
    if not any((d / n).is_file() for n in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
        pytest.skip(f"MNIST test images not found in {d} (set MDLCODEC_MNIST)")
    return d


@pytest.fixture(scope="session")
def mnist_sae(mnist_dir):
    """(dataset, SAE): a BatchTopK SAE (width 128, k 16) trained briefly on the MNIST 8,000-image split."""
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, train_sae

    ds = load_dataset(f"mnist:{mnist_dir}")
    sae, _ = train_sae(SAEConfig(arch="batchtopk", d_in=784, d_sae=128, k=16), ds.train, None,
                       TrainConfig(progress=False, epochs=6, seed=0))
    return ds, sae


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory):
    """A small trained SAE on toy data, saved with codec tables: (model_dir, dataset)."""
    from mdlcodec.codec.precision import fit_codec
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, save_sae, train_sae

    ds = load_dataset("toy:n=3000,n_features=24,d=12,l0=2")
    sae, _ = train_sae(SAEConfig(arch="batchtopk", d_in=12, d_sae=24, k=2), ds.train, None,
                       TrainConfig(progress=False, epochs=4, seed=0))
    model_dir = tmp_path_factory.mktemp("toy") / "model"
    save_sae(sae, model_dir)
    codec, _ = fit_codec(sae, ds.train, ds.test)
    codec.save_tables(model_dir)
    return model_dir, ds


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module of small models: as fast, and fair to a shared 2-core machine
    (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
