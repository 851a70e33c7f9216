"""mdlcodec.selection.sweep: the calibration search (without training) and the cache key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mdlcodec.models import TrainConfig
from mdlcodec.selection.sweep import calibrate_width

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeCache:
    """Stands in for SAECache: test MSE is a known function of k; counts the 'trainings'."""

    def __init__(self, mse, d_in=1000, known=()):
        self.mse, self.train, self.calls = mse, np.zeros((1, d_in)), []
        self.known = {k: self._entry(k) for k in known}

    def _entry(self, k):
        return {"test": {"mse": self.mse(k)}, "hash": f"h{k}", "training": {"seconds": 0.0}}

    def known_ks(self, arch, d_in, d_sae, tcfg):
        return dict(self.known)

    def get_or_train(self, cfg, tcfg, progress):
        self.calls.append(cfg.k)
        return self._entry(cfg.k)


@pytest.mark.parametrize("scale,power,width,guess", [
    (0.06, 0.5, 256, None), (0.06, 0.5, 256, 3), (0.2, 1.0, 1024, 500), (0.016, 0.1, 64, 8),
    (0.05, 0.7, 4096, 40), (0.0151, 0.3, 128, None)])
def test_calibration_finds_the_smallest_passing_k_in_few_trainings(scale, power, width, guess):
    tol = 0.015
    mse = lambda k: scale * k ** -power  # noqa: E731
    truth = next((k for k in range(1, width + 1) if mse(k) <= tol), None)
    cache = FakeCache(mse)
    cal = calibrate_width(cache, width, tol, TrainConfig(), k_guess=guess)
    assert cal.k == truth and cal.converged
    assert len(cache.calls) == len(set(cache.calls)) <= 2 * math.log2(width) + 2
    assert (cal.k == 1 or cal.k - 1 in cal.trials) and not cal.trials.get((cal.k or 1) - 1, cal.chosen).passed


def test_calibration_says_when_no_k_meets_the_tolerance():
    cache = FakeCache(lambda k: 0.02 + 1 / k)
    cal = calibrate_width(cache, 48, 0.015, TrainConfig(), k_guess=4)
    assert cal.k is None and cal.chosen is None and cache.calls[-1] == 48  # k_max = width was tried


def test_calibration_starts_from_the_cache_and_stops_at_the_resolution():
    mse = lambda k: 0.1 / k  # noqa: E731  (passes from k = 7)
    cache = FakeCache(mse, known=(6, 7))
    assert calibrate_width(cache, 64, 0.015, TrainConfig()).k == 7 and cache.calls == []
    coarse = FakeCache(lambda k: 1.0 / k)  # passes from 67
    cal = calibrate_width(coarse, 512, 0.015, TrainConfig(), k_guess=10, k_resolution=0.1)
    lo = max(k for k, t in cal.trials.items() if not t.passed)
    assert 67 <= cal.k <= 67 * 1.12 and cal.k - lo <= 0.1 * cal.k
    assert len(coarse.calls) < len(set(range(10, 68)))


def test_the_cache_key_ignores_device_but_not_training_settings(sweep, toy):
    from mdlcodec.models import SAEConfig
    from mdlcodec.selection.sweep import cache_key, data_fingerprint, key_hash

    fp = data_fingerprint(toy.train, toy.test)
    cfg = SAEConfig("batchtopk", 24, 32, k=6)
    base = key_hash(cache_key(fp, cfg, TrainConfig(epochs=30)))
    assert key_hash(cache_key(fp, cfg, TrainConfig(epochs=30, device="cuda", progress=True))) == base
    assert key_hash(cache_key(fp, cfg, TrainConfig(epochs=31))) != base
    assert key_hash(cache_key(fp, SAEConfig("batchtopk", 24, 32, k=7), TrainConfig(epochs=30))) != base
    assert data_fingerprint(toy.train[:-1], toy.test) != fp
