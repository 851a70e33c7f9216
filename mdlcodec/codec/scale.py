"""Is an input on the scale the SAE was trained on?

An SAE fed data on another scale (raw 0-255 pixels to a model trained on [0, 1], activations
without the normalisation used in training) still encodes, but at many times the bits and with a
reconstruction error to match. The training data's RMS is saved with the model (cfg.data_rms) and
an input whose RMS is more than SCALE_RATIO times off it, either way, gets one line of warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCALE_RATIO = 10.0
_ROWS = 1024  # rows squared at a time in float64


@dataclass(frozen=True)
class DataStats:
    """Statistics of an SAE's raw training inputs. rms: root mean square over samples and dimensions."""

    rms: float

    @classmethod
    def from_config(cls, cfg) -> "DataStats | None":
        """From an SAEConfig's data_rms; None where the model does not know it (trained before it was saved)."""
        rms = getattr(cfg, "data_rms", None)
        return cls(float(rms)) if rms is not None and rms > 0 else None


def rms(x: np.ndarray) -> float:
    """Root mean square of all entries of x (float64 sums; nan for an empty x)."""
    x = np.asarray(x)
    if x.size == 0:
        return math.nan
    rows = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(-1, 1)
    total = sum(float(np.square(rows[s:s + _ROWS], dtype=np.float64).sum()) for s in range(0, len(rows), _ROWS))
    return math.sqrt(total / x.size)


def scale_warning(x: np.ndarray, stats: DataStats | None, ratio: float = SCALE_RATIO) -> str | None:
    """One line if the RMS of x (e.g. a file's first chunk) is more than ``ratio`` times above or below
    the training data's, naming both; None if it is within, or stats is None, or x is empty or not finite."""
    if stats is None:
        return None
    r = rms(x)
    if not math.isfinite(r) or stats.rms / ratio <= r <= stats.rms * ratio:
        return None
    factor = f"{r / stats.rms:.3g} times" if r > stats.rms else (f"1/{stats.rms / r:.3g} of" if r > 0 else "0 times")
    return (f"the input's RMS is {r:.4g}, {factor} the training data's ({stats.rms:.4g}): is it on another scale "
            "(raw 0-255 pixels, unnormalised activations)? It will cost many more bits and reconstruct poorly")
