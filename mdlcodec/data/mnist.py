"""MNIST from a folder of IDX files (gzip or raw), pixels as float32 in [0, 1] (byte / 255).

Split (fixed): with only the test-set images (t10k-images-idx3-ubyte[.gz], 10,000 images), the
first 8,000 train and the last 2,000 test. With a full MNIST folder (train-images-idx3-ubyte[.gz]
as well), train = the 60,000 training images and test = the 10,000 test images.
Samples are flattened rows of 784 pixels in row-major order; image_shape is (28, 28).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from mdlcodec.core.errors import DataError
from mdlcodec.core.paths import regular_file
from mdlcodec.data.dataset import Dataset

IDX3_UBYTE_MAGIC = 0x00000803
TEST_ONLY_TRAIN_ROWS = 8000


def mnist_dir_default() -> Path:
    """$MDLCODEC_MNIST if set, else ../shared/data/mnist beside the checkout this package runs from
    (wherever the command is run), else the same relative to the current directory (an installed
    package has no checkout)."""
    env = os.environ.get("MDLCODEC_MNIST")
    if env:
        return Path(env)
    beside_checkout = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist").resolve()
    return beside_checkout if beside_checkout.is_dir() else Path.cwd() / ".." / "shared" / "data" / "mnist"


def read_idx_images(path: Path) -> np.ndarray:
    """An IDX3 ubyte image file (gzip or raw) as uint8 [n, rows, cols]; a regular file (not a FIFO),
    magic and length checked."""
    regular_file(path, error=DataError)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(raw) < 16:
        raise DataError(f"{path} is too short to be an IDX image file ({len(raw)} bytes)")
    magic, n, rows, cols = np.frombuffer(raw, dtype=">u4", count=4)
    if magic != IDX3_UBYTE_MAGIC:
        raise DataError(f"{path} is not an IDX image file "
                        f"(magic 0x{int(magic):08x}, expected 0x{IDX3_UBYTE_MAGIC:08x})")
    size = int(n) * int(rows) * int(cols)
    if len(raw) - 16 != size:
        raise DataError(f"{path} holds {len(raw) - 16} pixel bytes; its header ({n} x {rows} x {cols}) says {size}")
    if size == 0:
        raise DataError(f"{path} is empty (header: {n} x {rows} x {cols})")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(int(n), int(rows), int(cols))


def _find(folder: Path, stem: str) -> Path | None:
    for sub in (folder, folder / "MNIST" / "raw"):  # the second is where torchvision downloads to
        for name in (stem, stem + ".gz"):
            if (sub / name).is_file():
                return sub / name
    return None


def _download(folder: Path) -> None:
    try:
        from torchvision.datasets import MNIST  # optional; only ever imported here
    except Exception as e:
        raise DataError(f"MNIST is not in {folder} and torchvision cannot be imported to download it ({e})") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        MNIST(str(folder), train=False, download=True)  # fetches all four MNIST files
    except Exception as e:
        raise DataError(f"downloading MNIST into {folder} failed: {e}") from None


def load_mnist(folder: str | Path | None = None, download: bool = False, spec: str = "mnist") -> Dataset:
    """MNIST as a Dataset (see the module docstring for the split). `folder` defaults to
    mnist_dir_default(); with download=True and no images there, torchvision fetches them."""
    folder = Path(folder) if folder else mnist_dir_default()
    test_file = _find(folder, "t10k-images-idx3-ubyte")
    if test_file is None and download:
        _download(folder)
        test_file = _find(folder, "t10k-images-idx3-ubyte")
    if test_file is None:
        raise DataError(f"no MNIST test images (t10k-images-idx3-ubyte[.gz]) in {folder}; "
                        f"set MDLCODEC_MNIST, use mnist:PATH, or add ',download=1' (needs torchvision)")
    test = read_idx_images(test_file)
    train_file = _find(folder, "train-images-idx3-ubyte")
    if train_file is not None:
        train = read_idx_images(train_file)
        if train.shape[1:] != test.shape[1:]:
            raise DataError(f"{train_file} and {test_file} have images of different sizes")
    else:
        if len(test) <= TEST_ONLY_TRAIN_ROWS:
            raise DataError(f"{test_file} holds {len(test)} images; "
                            f"the test-set-only split needs more than {TEST_ONLY_TRAIN_ROWS}")
        train, test = test[:TEST_ONLY_TRAIN_ROWS], test[TEST_ONLY_TRAIN_ROWS:]
    rows, cols = test.shape[1:]

    def pixels(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), rows * cols).astype(np.float32) / np.float32(255)

    return Dataset(name=f"MNIST ({len(train)} train / {len(test)} test)", spec=spec,
                   train=pixels(train), test=pixels(test), image_shape=(rows, cols))
