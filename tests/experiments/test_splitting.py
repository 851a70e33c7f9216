"""Figure 3 with the real codec (mdlcodec.experiments.splitting): measured bits against the theory
formulas, exact round trips, and the phase diagram's verdicts (`mdlcodec splitting` is in
tests/cli/test_bench_cmd.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.experiments.splitting import (
    activations,
    phase_diagram,
    sample_booleans,
    splitting_point,
)
from mdlcodec.theory import splitting_joint


POINTS = [(0.05, 0.0), (0.1, 0.5), (0.2, 0.2), (0.3, 0.9), (0.5, 0.6)]


@pytest.mark.parametrize("p,rho", POINTS)
def test_measured_bits_match_the_formulas(p, rho):
    r = splitting_point(p, rho, n=50_000, seed=3)
    for name in ("unsplit", "split"):
        m = r[name]
        assert m["exact"] and m["mse"] < 1e-12
        # what the coder is built to reach: the cross-entropy of the coded symbols under the model
        assert m["cross_entropy_bits"] == pytest.approx(r["formula"][name], rel=0.01)
        # no file goes below the source's entropy
        assert m["payload_bits"] >= r["source_entropy"]
        assert m["l0"] == pytest.approx(r["formula_l0"][name], rel=0.01)
    # the unsplit file reaches the formula within 1%
    assert r["unsplit"]["payload_bits"] == pytest.approx(r["formula"]["unsplit"], rel=0.01)
    # the split file too, and both reach their cross-entropy (format version 3: module docstring)
    assert r["split"]["payload_bits"] == pytest.approx(r["formula"]["split"], rel=0.01)
    for name in ("unsplit", "split"):
        assert r[name]["payload_bits"] == pytest.approx(r[name]["cross_entropy_bits"], abs=0.002 + 64 / r["n"])


def test_sampling_is_exact_and_reproducible():
    a, b = sample_booleans(0.3, 0.5, 10_000, seed=1)
    j = splitting_joint(0.3, 0.5)
    assert (a & b).sum() == round(10_000 * float(j["p11"]))
    assert (a & ~b).sum() == (b & ~a).sum() == round(10_000 * float(j["p10"]))
    a2, b2 = sample_booleans(0.3, 0.5, 10_000, seed=1)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    x = activations(a, b)
    assert x.shape == (10_000, 2) and set(np.unique(x)) <= {0.0, 1.0}


def test_verdicts_follow_correlation():
    assert splitting_point(0.3, 0.1, 20_000)["measured_shorter"] == "unsplit"
    assert splitting_point(0.3, 0.9, 20_000)["measured_shorter"] == "split"


def test_phase_diagram_small_grid():
    d = phase_diagram(np.linspace(0.1, 0.5, 4), np.linspace(0.0, 0.95, 5), n=5_000)
    assert d["all_decoded_exactly"] and d["payload_above_source_entropy"]
    assert d["cross_entropy"]["cells_same_verdict_as_formula"] == 1.0
    assert max(d["cross_entropy"]["max_relative_error"].values()) < 0.01
    assert d["cross_entropy"]["max_boundary_gap"] < 0.1  # grid step in rho is 0.24: the interpolated root is close
