"""mdlcodec.selection.measure: every measured SAE meets the tolerance and its file matches theory."""

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
        assert abs(r["measured_over_theory"] - 1) < 0.01          # coded chunks vs cross-entropy
        assert r["dl_measured"] > r["payload_measured"] >= 0.99 * r["dl_theory"]["total"]
        assert math.isclose(r["dl_theory"]["total"], r["dl_theory"]["activity"] + r["dl_theory"]["values"])
        assert r["decoder_bits"] == 32 * (r["width"] * 24 + 24 + 1)
    pca = results["pca"]
    assert pca["quantised_test_mse"] <= TOL and pca["components"] <= 24
