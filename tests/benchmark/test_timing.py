"""mdlcodec.benchmark.timing: measuring a method checks its claim to be lossless."""

from __future__ import annotations

import pytest

from mdlcodec.baselines import StoredFloat
from mdlcodec.benchmark import measure


def test_measure_checks_lossless_claims(data):
    _, x = data
    r = measure(StoredFloat("float32"), x)
    assert r["mse"] == 0 and r["bits_per_sample"] == 8 * (8 + 4 * x.size) / len(x)
    bad = StoredFloat("float16")
    bad.lossless = True
    with pytest.raises(AssertionError):
        measure(bad, x)
