"""mdlcodec.selection.plots: features picked at density percentiles, and the feature grid."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.selection.plots import features_at_percentiles

pytestmark = pytest.mark.usefixtures("one_thread")


def test_feature_picks_follow_density_percentiles():
    density = np.array([0.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.0])
    assert features_at_percentiles(density, (95, 50, 5), per_percentile=1) == [[1], [4], [7]]
    assert features_at_percentiles(density, (50,), per_percentile=3) == [[4, 3, 5]]
    assert features_at_percentiles(np.zeros(4)) == [[], [], [], [], []]


def test_feature_grid_for_image_data(sweep, tmp_path):
    from mdlcodec.selection.plots import plot_feature_grid

    _, _, extra = sweep
    h = next(iter(extra.decoders))
    w_dec = extra.decoders[h]
    images = np.concatenate([w_dec, np.zeros((len(w_dec), 1), np.float32)], axis=1)  # 24 + 1 = 5 x 5
    path = plot_feature_grid([("one", images, extra.densities[h])], (5, 5), tmp_path / "grid.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
