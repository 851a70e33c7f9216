"""Fixtures of the codec tests."""

import pytest

from tests.conftest import torch_on_one_thread


@pytest.fixture(scope="session")
def mnist_sae(mnist_dir):
    """(dataset, SAE): a BatchTopK SAE (width 128, k 16) trained briefly on the MNIST 8,000-image split."""
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, train_sae

    ds = load_dataset(f"mnist:{mnist_dir}")
    with torch_on_one_thread():  # the same weights whichever test asks first
        sae, _ = train_sae(SAEConfig(arch="batchtopk", d_in=784, d_sae=128, k=16), ds.train, None,
                           TrainConfig(progress=False, epochs=6, seed=0))
    return ds, sae
