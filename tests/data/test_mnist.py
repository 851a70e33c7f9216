"""mdlcodec.data.mnist: the real MNIST split, IDX files raw and gzipped, a full folder, a bad magic."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mdlcodec.core.errors import DataError
from mdlcodec.data import load_dataset
from mdlcodec.data.mnist import read_idx_images


def _idx(images: np.ndarray) -> bytes:
    n, r, c = images.shape
    return np.array([0x803, n, r, c], dtype=">u4").tobytes() + images.astype(np.uint8).tobytes()


def test_real_mnist(mnist_dir):
    ds = load_dataset(f"mnist:{mnist_dir}")
    assert ds.train.shape == (8000, 784) and ds.test.shape == (2000, 784) and ds.image_shape == (28, 28)
    assert ds.train.dtype == np.float32 and ds.train.min() == 0 and ds.train.max() == 1
    raw = read_idx_images(mnist_dir / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(ds.test * 255, raw[8000:].reshape(2000, 784))


def test_idx_raw_and_gzip_and_full_folder(tmp_path):
    rng = np.random.default_rng(0)
    test_imgs, train_imgs = rng.integers(0, 256, (5, 4, 3)), rng.integers(0, 256, (7, 4, 3))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(test_imgs))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(train_imgs)))
    ds = load_dataset(f"mnist:{tmp_path}")
    assert ds.image_shape == (4, 3) and ds.train.shape == (7, 12) and ds.test.shape == (5, 12)
    np.testing.assert_allclose(ds.train, train_imgs.reshape(7, 12) / 255, rtol=1e-6)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(DataError, match="magic"):
        load_dataset(f"mnist:{tmp_path}")
