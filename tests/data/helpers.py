"""Test helpers of the data layer, shared with the CLI tests."""

from __future__ import annotations

import numpy as np


def _matrix(n=10, d=3, dtype=np.float32) -> np.ndarray:
    return np.arange(n * d, dtype=np.float64).reshape(n, d).astype(dtype) / 7
