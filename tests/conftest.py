"""Shared fixtures. Keep small: each contributor adds only what several test files need."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder ($MDLCODEC_MNIST, else ../shared/data/mnist from the repo root); skips if absent."""
    d = Path(os.environ.get("MDLCODEC_MNIST") or REPO_ROOT.parent / "shared" / "data" / "mnist")
    if not any((d / n).is_file() for n in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")):
        pytest.skip(f"MNIST test images not found in {d} (set MDLCODEC_MNIST)")
    return d
