"""scale.scale_warning: one line when an input's RMS is more than 10 times off the training data's."""

from __future__ import annotations

import numpy as np

from mdlcodec.codec.scale import DataStats, rms, scale_warning
from mdlcodec.models import SAEConfig


def test_warns_beyond_ten_times_either_way_naming_both_figures():
    stats = DataStats(rms=0.5)
    x = np.full((4, 3), 0.5, np.float32)
    assert scale_warning(x, stats) is None
    assert scale_warning(x * 10, stats) is None and scale_warning(x / 10, stats) is None  # the bound itself
    high = scale_warning(x * 10.5, stats)
    assert high is not None and "5.25" in high and "0.5" in high and "10.5 times" in high and "\n" not in high
    low = scale_warning(x / 20, stats)
    assert low is not None and "0.025" in low and "1/20 of" in low
    assert "0 times" in scale_warning(np.zeros((2, 3)), stats)


def test_raw_uint8_pixels_against_unit_scale_training_data():
    pixels = np.random.default_rng(0).integers(0, 256, size=(50, 784), dtype=np.uint8)
    w = scale_warning(pixels, DataStats(rms=rms(pixels / 255)))
    assert w is not None and "255 times" in w


def test_no_warning_without_statistics_or_data():
    x = np.ones((3, 2), np.float32) * 1e6
    assert scale_warning(x, None) is None
    assert scale_warning(np.zeros((0, 2)), DataStats(rms=1.0)) is None
    assert scale_warning(np.array([[np.nan, 1.0]]), DataStats(rms=1.0)) is None  # NaN is refused elsewhere


def test_statistics_come_from_the_models_config():
    assert DataStats.from_config(SAEConfig("topk", 4, 8, k=2, data_rms=0.25)) == DataStats(0.25)
    assert DataStats.from_config(SAEConfig("topk", 4, 8, k=2)) is None  # older models: unknown
