"""selection.tokens: the tokens below a norm quantile, their variance and FVU."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.core.errors import MdlcodecError
from mdlcodec.measurement.tokens import NormCut, mean_variance, row_norms


def test_mean_variance_over_a_mask_is_numpy_s():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9000, 5)).astype(np.float32) * np.arange(1, 6)
    rows = rng.random(9000) < 0.3
    assert mean_variance(x) == pytest.approx(float(np.var(x.astype(np.float64), axis=0).mean()), rel=1e-9)
    assert mean_variance(x, rows) == pytest.approx(float(np.var(x[rows].astype(np.float64), axis=0).mean()), rel=1e-9)
    assert row_norms(x) == pytest.approx(np.linalg.norm(x.astype(np.float64), axis=1), rel=1e-9)


def test_norm_cut_leaves_out_the_massive_tokens_and_refuses_an_empty_cut():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 8)).astype(np.float32)
    x[:4] *= 300
    cut = NormCut.of(x, 0.999)
    assert not cut.rows[:4].any() and cut.rows.sum() == 4995
    assert cut.summary()["tokens"] == 4995 and cut.variance == pytest.approx(mean_variance(x[4:][cut.rows[4:]]))
    assert NormCut.of(x, 1.0).rows.all()
    for q in (0.0, 1.5, -1):
        with pytest.raises(MdlcodecError, match=r"\(0, 1\]"):
            NormCut.of(x, q)
    with pytest.raises(MdlcodecError, match="keeps 1 of 5000"):
        NormCut.of(x, 1e-9)
