"""mdlcodec.measurement.measure: every measured SAE meets the tolerance and its file matches theory."""

from __future__ import annotations

import math

import pytest

from tests.selection.helpers import TOL

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_measured_sae_meets_tol_and_its_file_matches_theory(sweep):
    _, results, _ = sweep
    measured = [r for r in results["rows"] if r["k"] is not None]
    assert measured and results["checks"]["all_quantised_within_tol"]
    for r in measured:
        assert r["test_mse"] <= TOL and r["quantised_test_mse"] <= TOL
        assert abs(r["payload_over_cross_entropy"] - 1) < 0.01          # coded chunks vs cross-entropy
        assert r["file_bits"] > r["payload_bits"] >= 0.99 * r["cross_entropy_bits"]["total"]
        assert math.isclose(r["cross_entropy_bits"]["total"],
                            r["cross_entropy_bits"]["activity"] + r["cross_entropy_bits"]["values"])
        assert r["decoder_bits"] == 32 * (r["width"] * 24 + 24 + 1)
    pca = results["pca"]
    assert pca["quantised_test_mse"] <= TOL and pca["components"] <= 24
