"""Figure 5 with the real codec (mdlcodec.experiments.hierarchy_figure): measured bits against the
theory formulas, the tree never longer than flat, exact round trips (`mdlcodec hierarchy-figure` is
in tests/cli/test_bench_cmd.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.experiments.hierarchy_figure import (
    activations,
    hierarchy_codec,
    hierarchy_point,
    phase_diagram,
    sample_animals,
)
from mdlcodec.theory import hierarchy_dl


POINTS = [(0.05, 0.5), (0.2, 0.1), (0.3, 0.9), (0.5, 0.5), (0.9, 0.3)]


@pytest.mark.parametrize("p_a,q", POINTS)
def test_measured_bits_match_the_formulas(p_a, q):
    r = hierarchy_point(p_a, q, n=50_000, seed=3)
    for name in ("flat", "tree"):
        m = r[name]
        assert m["exact"] and m["mse"] < 1e-12
        # the cross-entropy of the coded symbols under the model is the formula's DL
        assert m["cross_entropy_bits"] == pytest.approx(r["formula"][name], rel=0.01)
        assert m["l0"] == pytest.approx(r["formula_l0"][name], rel=0.01)
        assert m["payload_bits"] >= r["source_entropy"] - 1e-9  # no file below the source's entropy
    # the tree: never longer than flat, by the formula and by the cross-entropies
    assert r["formula"]["tree"] <= r["formula"]["flat"]
    assert r["tree"]["cross_entropy_bits"] <= r["flat"]["cross_entropy_bits"]
    # the tree's DL is the source's entropy, and its file reaches it
    assert r["formula"]["tree"] == pytest.approx(r["source_entropy"], rel=1e-9)
    assert r["tree"]["payload_bits"] == pytest.approx(r["formula"]["tree"], rel=0.01)
    # the flat file reaches its cross-entropy too (format version 3: module docstring)
    assert r["flat"]["payload_bits"] == pytest.approx(r["flat"]["cross_entropy_bits"], abs=0.002 + 64 / r["n"])
    # and the files keep the order, up to one 32-bit word of the coder's final state
    assert r["tree"]["payload_bits"] <= r["flat"]["payload_bits"] + 32 / r["n"]


def test_sampling_is_exact_and_birds_are_animals():
    a, b = sample_animals(0.3, 0.4, 10_000, seed=1)
    assert a.sum() == 3_000 and b.sum() == 1_200 and not np.any(b & ~a)
    a2, b2 = sample_animals(0.3, 0.4, 10_000, seed=1)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    x = activations(a, b)
    assert x.shape == (10_000, 2) and set(np.unique(x)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="p_B|A"):
        sample_animals(0.3, 1.5, 100, seed=0)


def test_dictionaries_are_flat_and_tree():
    x = activations(*sample_animals(0.5, 0.5, 2_000, seed=0))
    flat, tree = hierarchy_codec("flat", x), hierarchy_codec("tree", x)
    assert flat.entropy_model.hierarchy is None
    h = tree.entropy_model.hierarchy
    assert h.kind == "tree" and h.parents.tolist() == [-1, 0] and h.joint_counts.tolist() == [0, 500]
    # the flat dictionary's features never fire together; the tree's child only with its parent
    zf = flat.latents(x).to_dense()
    zt = tree.latents(x).to_dense()
    assert not np.any((zf[:, 0] != 0) & (zf[:, 1] != 0))
    assert not np.any((zt[:, 1] != 0) & (zt[:, 0] == 0))


def test_phase_diagram_small_grid():
    axis = np.linspace(0.1, 0.9, 4)
    d = phase_diagram(axis, axis, n=5_000)
    assert d["all_decoded_exactly"] and all(d["payload_above_source_entropy"].values())
    assert d["formula"]["tree_never_longer"] and d["cross_entropy"]["tree_never_longer"]
    assert max(d["cross_entropy"]["max_relative_error"].values()) < 0.01
    assert d["payload"]["max_tree_excess_bits"] <= 32
    f = hierarchy_dl(*np.meshgrid(axis, axis))
    assert np.allclose(d["formula_bits"]["tree"], f.tree_dl) and np.allclose(d["formula_bits"]["flat"], f.flat_dl)
