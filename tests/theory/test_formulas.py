"""The paper's formulas (mdlcodec.theory.formulas) against hand-computed values (the `mdlcodec dl`
calculators are in tests/cli/test_dl_cmd.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mdlcodec import theory as t


# ---------------------------------------------------------------------------- entropies

def test_binary_entropy_values():
    assert t.binary_entropy(0.5) == pytest.approx(1.0)
    assert t.binary_entropy(0.25) == pytest.approx(0.25 * 2 + 0.75 * math.log2(4 / 3))  # 0.8113
    assert t.binary_entropy(0.0) == 0.0 and t.binary_entropy(1.0) == 0.0
    p = np.linspace(0, 1, 101)
    h = t.binary_entropy(p)
    assert h.shape == p.shape and np.allclose(h, h[::-1]) and h.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="probabilities"):
        t.binary_entropy([0.2, 1.5])


def test_entropy_bits_categorical():
    assert t.entropy_bits([0.25] * 4) == pytest.approx(2.0)
    rows = t.entropy_bits([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    assert np.allclose(rows, [1.5, 0.0])
    assert t.entropy_bits([0.3, 0.7]) == pytest.approx(t.binary_entropy(0.3))
    with pytest.raises(ValueError, match="sum to 1"):
        t.entropy_bits([0.5, 0.4])


# ---------------------------------------------------------------------------- Eq. 1, Appendix B

def test_appendix_b_sparse_bound_is_1405():
    b = t.dl_bound_sparse(65, 25_000, 7)
    # log2 25000 = log2 25 + 3 log2 10 = 4.6439 + 9.9658 = 14.6096; 65 x 21.6096 = 1404.63
    assert b.index_bits == pytest.approx(65 * (math.log2(25) + 3 * math.log2(10)))
    assert b.value_bits == 455 and b.total_bits == pytest.approx(b.index_bits + 455)
    assert round(b.total_bits) == 1405


def test_appendix_b_dense_is_5376():
    b = t.dl_dense(768, 7)
    assert (b.index_bits, b.value_bits, b.total_bits) == (0.0, 5376.0, 5376.0)


def test_appendix_b_onehot_eq1_and_the_printed_figure():
    r = t.dl_onehot(50_257, 128, 7)
    assert r.eq1.log2_width == pytest.approx(128 * math.log2(50_257))  # 1998.98
    assert round(r.eq1.log2_width) == 1999
    assert round(r.eq1.total_bits) == 2006 == 7 + 1999  # what Eq. 1 says with L0 = 1
    assert r.paper_printed == 13_993 == 7 * 1999  # what the paper prints: the product
    assert round(r.product_reading) == r.paper_printed
    assert "13,993" in r.note and "2005.98" in r.note


@pytest.mark.parametrize("call", [lambda: t.dl_bound_sparse(65, -5, 7), lambda: t.dl_bound_sparse(-1, 10, 7),
                                  lambda: t.dl_dense(0, 7), lambda: t.dl_onehot(50_257, 128, -1)])
def test_calculators_refuse_bad_arguments(call):
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------- Figure 3

P = np.linspace(0.02, 0.98, 49)


def test_splitting_joint_has_the_asked_marginals_and_correlation():
    p, rho = np.meshgrid(P, np.linspace(0, 1, 11))
    j = t.splitting_joint(p, rho)
    total = j["p11"] + j["p10"] + j["p01"] + j["p00"]
    assert np.allclose(total, 1) and all((v >= 0).all() for v in j.values())
    assert np.allclose(j["p11"] + j["p10"], p)
    assert np.allclose((j["p11"] - p * p) / (p * (1 - p)), rho)
    assert np.allclose(t.splitting_rho_min([0.5, 0.25]), [-1.0, -1 / 3])
    with pytest.raises(ValueError, match="rho out of range"):
        t.splitting_joint(0.25, -0.5)


def test_splitting_unsplit_wins_when_independent_split_wins_when_identical():
    d0 = t.feature_splitting_dl(P, 0.0)
    assert np.all(d0.unsplit_dl < d0.split_dl)
    # independent bits: the per-feature code of {A, B} is exactly their joint entropy
    j = t.splitting_joint(P, 0.0)
    joint = t.entropy_bits(np.stack([j["p11"], j["p10"], j["p01"], j["p00"]], axis=-1))
    assert np.allclose(d0.unsplit_dl, joint)
    d1 = t.feature_splitting_dl(P, 0.99)
    assert np.all(d1.split_dl < d1.unsplit_dl)
    dmax = t.feature_splitting_dl(P, 1.0)
    assert np.allclose(dmax.unsplit_dl - dmax.split_dl, t.binary_entropy(P))
    assert np.all(d0.split_l0 <= d0.unsplit_l0)  # splitting never raises L0


def test_splitting_bits_per_value_adds_l0_times_b():
    a, b = t.feature_splitting_dl(P, 0.3), t.feature_splitting_dl(P, 0.3, bits_per_value=5)
    assert np.allclose(b.unsplit_dl - a.unsplit_dl, 5 * a.unsplit_l0)
    assert np.allclose(b.split_dl - a.split_dl, 5 * a.split_l0)


@pytest.mark.parametrize("bits", [0.0, 3.0])
def test_phase_boundary_is_a_root_with_the_regimes_on_either_side(bits):
    rho = t.splitting_phase_boundary(P, bits_per_value=bits)
    ok = ~np.isnan(rho)
    assert ok[P <= 0.5].all()
    d = t.feature_splitting_dl(P[ok], rho[ok], bits)
    assert np.abs(d.split_dl - d.unsplit_dl).max() < 1e-9
    above = t.feature_splitting_dl(P[ok], np.minimum(rho[ok] + 0.01, 1), bits)
    assert np.all(above.split_dl < above.unsplit_dl)
    if bits == 0:
        assert np.all((rho > 0) & (rho < 1))
        below = t.feature_splitting_dl(P, rho - 0.01)
        assert np.all(below.unsplit_dl < below.split_dl)
        # one crossing only on [0, 1]: the root found is the boundary
        r = np.linspace(0, 1, 401)[None, :]
        grid = t.feature_splitting_dl(P[:, None], r)
        assert np.all((np.diff(np.sign(grid.split_dl - grid.unsplit_dl), axis=1) != 0).sum(axis=1) == 1)


# ---------------------------------------------------------------------------- Figure 5, trees

def test_hierarchy_tree_beats_flat_inside_and_ties_at_the_edges():
    pa, q = np.meshgrid(np.linspace(0.05, 1, 20), np.linspace(0.05, 0.95, 19))
    h = t.hierarchy_dl(pa, q)
    assert np.all(h.tree_dl < h.flat_dl)
    assert np.allclose(h.flat_l0, pa) and np.allclose(h.tree_l0, pa * (1 + q))
    # tree = joint entropy of {neither, animal-not-bird, bird}
    joint = t.entropy_bits(np.stack([1 - pa, pa * (1 - q), pa * q], axis=-1))
    assert np.allclose(h.tree_dl, joint)
    pa1 = np.linspace(0, 1, 11)
    for edge in (0.0, 1.0):
        e = t.hierarchy_dl(pa1, edge)
        assert np.allclose(e.tree_dl, e.flat_dl)
    z = t.hierarchy_dl(0.0, np.linspace(0, 1, 11))
    assert np.allclose(z.tree_dl, 0) and np.allclose(z.flat_dl, 0)


def test_tree_dl_matches_figure_5_and_a_flat_forest():
    h = t.hierarchy_dl(0.4, 0.3)
    assert t.tree_dl([0.4, 0.12], [-1, 0]) == pytest.approx(float(h.tree_dl))
    p = np.array([0.1, 0.5, 0.9])
    assert t.tree_dl(p, [-1, -1, -1]) == pytest.approx(t.binary_entropy(p).sum())
    assert t.tree_dl(p, [-1, -1, -1], bits_per_value=4) == pytest.approx(t.binary_entropy(p).sum() + 4 * p.sum())


def test_tree_dl_equals_the_joint_entropy_of_a_planted_forest():
    parents = np.array([-1, 0, 0, 1, -1, 4, 5])
    q = np.array([0.6, 0.3, 0.7, 0.5, 0.2, 0.9, 0.4])  # P(active | parent active), roots: P(active)
    marg = np.empty_like(q)
    for i in range(len(q)):  # parents precede children here
        marg[i] = q[i] * (1.0 if parents[i] < 0 else marg[parents[i]])
    probs = []
    for x in itertools.product([0, 1], repeat=len(q)):
        pr = 1.0
        for i, xi in enumerate(x):
            on = parents[i] < 0 or x[parents[i]] == 1
            pr *= (q[i] if xi else 1 - q[i]) if on else (0.0 if xi else 1.0)
        probs.append(pr)
    assert t.tree_dl(marg, parents) == pytest.approx(float(t.entropy_bits(probs)), abs=1e-12)
    assert t.tree_dl(marg, parents) < t.binary_entropy(marg).sum()  # the flat code of the same bits


@pytest.mark.parametrize("p, parents, msg", [([0.5, 0.5], [1, 0], "cycle"), ([0.5, 0.5], [0, -1], "cycle|own parent"),
                                             ([0.2, 0.5], [-1, 0], "more probable"), ([0.2, 0.1], [-1, 7], "parents must be")])
def test_tree_dl_refuses_what_is_not_a_forest(p, parents, msg):
    with pytest.raises(ValueError, match=msg):
        t.tree_dl(p, parents)


def test_two_part_code():
    assert t.decoder_bits(16, 784, 8) == 17 * 784 * 8
    assert t.two_part_bits_per_sample(100.0, 8000.0, 2000) == 104.0
