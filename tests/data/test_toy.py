"""mdlcodec.data.toy: the toy model is deterministic and hits its L0, the LM-like preset, the planted
hierarchy and correlation, and its true entropy against the empirical one."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.data import ToyConfig, load_dataset, make_toy


def test_toy_default_is_deterministic_and_hits_l0():
    a, b = load_dataset("toy"), load_dataset("toy")
    assert a.train.shape == (16000, 32) and a.test.shape == (4000, 32) and a.truth.directions.shape == (64, 32)
    assert a.train.tobytes() == b.train.tobytes() and a.test.tobytes() == b.test.tobytes()
    assert a.truth.train_activity.indices.tobytes() == b.truth.train_activity.indices.tobytes()
    assert load_dataset("toy:seed=1").train.tobytes() != a.train.tobytes()
    assert abs(a.truth.probs.sum() - 3) < 1e-9
    assert abs(a.truth.train_activity.l0().mean() - 3) < 0.1
    np.testing.assert_allclose(np.linalg.norm(a.truth.directions, axis=1), 1, atol=1e-6)
    # the data is exactly the sum of the recorded active features
    act = a.truth.test_activity
    z = np.zeros((act.n, 64), np.float32)
    z[np.repeat(np.arange(act.n), act.l0()), act.indices] = act.values
    np.testing.assert_allclose(z @ a.truth.directions, a.test, atol=1e-5)
    assert act.values.min() >= 0.5 and act.values.max() <= 1.5


def test_toy_lm_preset():
    ds = load_dataset("toy:lm,n=2000")
    assert ds.d == 768 and ds.truth.directions.shape == (4096, 768)
    assert abs(ds.truth.train_activity.l0().mean() - 64) < 2


def _structured(**kw) -> tuple:
    cfg = ToyConfig(n_features=8, d=4, l0=2.0, alpha=0.7, hierarchy=2, correlated=1, rho=0.6, n=200_000, seed=3)
    ds = make_toy(ToyConfig(**{**cfg.__dict__, **kw}))
    return ds.truth, ds.truth.train_activity.to_dense()


def test_toy_hierarchy_and_correlation():
    t, bits = _structured()
    for child in np.flatnonzero(t.parents >= 0):
        parent = t.parents[child]
        assert not (bits[:, child] & ~bits[:, parent]).any()  # never without the parent
        assert abs(bits[:, child].mean() - t.probs[child]) < 0.01
    (a, b), = t.pairs
    assert abs(np.corrcoef(bits[:, a], bits[:, b])[0, 1] - 0.6) < 0.03
    np.testing.assert_allclose(bits.mean(axis=0), t.probs, atol=0.01)


@pytest.mark.parametrize("kw", [{}, {"hierarchy": 0, "correlated": 0}, {"rho": -0.1}])
def test_toy_true_entropy_matches_empirical_joint_entropy(kw):
    t, bits = _structured(**kw)
    _, counts = np.unique(np.packbits(bits, axis=1), axis=0, return_counts=True)
    p = counts / counts.sum()
    empirical = -(p * np.log2(p)).sum()  # plug-in entropy of the whole pattern (256 outcomes)
    assert abs(empirical - t.entropy_bits_per_sample()) < 0.02
