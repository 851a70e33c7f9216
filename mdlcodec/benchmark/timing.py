"""Timing and measuring one method: bytes, bits per sample, distortion, and encode/decode speed."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from mdlcodec.baselines import Method, distortion


def _best_time(fn: Callable[[], object], budget_s: float = 1.0, max_runs: int = 5) -> tuple[float, object]:
    """(fastest wall-clock seconds of fn(), its last result): runs again while under budget_s in all."""
    best, spent, runs, out = np.inf, 0.0, 0, None
    while runs < max_runs and (runs == 0 or spent < budget_s):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best, out


def measure(method: Method, x: np.ndarray, timed: bool = True) -> dict:
    """One method on test activations x [n, d]: bytes, bits per sample, distortion, and (if timed)
    encode/decode seconds and samples per second. Lossless methods are checked to round-trip exactly."""
    n = len(x)
    if timed:
        t_enc, data = _best_time(lambda: method.encode(x))
        t_dec, x_hat = _best_time(lambda: method.decode(data))
    else:
        data = method.encode(x)
        x_hat = method.decode(data)
    if method.lossless and not np.array_equal(x_hat, np.asarray(x, np.float32)):
        raise AssertionError(f"{method.name} claims to be lossless but does not round-trip exactly")
    out = {"method": method.name, "lossless": method.lossless, "bytes": len(data), "n": n,
           "bits_per_sample": 8 * len(data) / n, "model_bits": method.model_bits,
           "model_bits_per_sample": method.model_bits / n, **distortion(x, x_hat), "params": method.params}
    if timed:
        out.update({"encode_s": t_enc, "decode_s": t_dec, "encode_samples_per_s": n / t_enc,
                    "decode_samples_per_s": n / t_dec})
    return out
