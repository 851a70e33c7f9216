"""Hierarchical activity coding (mdlcodec.codec.entropy.hierarchy; tree and Chow-Liu forests): exact round
trips, bits against the tree formula, Chow-Liu recovery of a planted hierarchy, and never worse than
flat beyond its tables (through the CLI: tests/cli/test_codec_cmd.py, tests/cli/test_train_cmd.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.hierarchy import Hierarchy, chow_liu, prune_to_forest
from mdlcodec.codec.format.bitstream import ChunkCoder
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.data import load_dataset
from mdlcodec.theory import binary_entropy


def random_forest(rng, d, max_depth=4):
    """parents [d]: each feature's parent is an earlier feature (or -1), depth at most max_depth."""
    parents = np.full(d, -1, dtype=np.int64)
    depth = np.zeros(d, dtype=np.int64)
    for f in range(1, d):
        g = int(rng.integers(-1, f))
        if g >= 0 and depth[g] < max_depth and rng.random() < 0.7:
            parents[f], depth[f] = g, depth[g] + 1
    return parents


def forest_codes(rng, n, parents, p_root, q_child, violate=0.0):
    """Activity drawn top-down: roots with p_root, children with q_child when the parent fired (and
    with ``violate`` when it did not); bins geometric with random signs."""
    d = len(parents)
    act = np.zeros((n, d), dtype=bool)
    for f in range(d):  # parents precede children
        g = parents[f]
        u = rng.random(n)
        act[:, f] = u < p_root[f] if g < 0 else np.where(act[:, g], u < q_child[f], u < violate)
    bins = rng.geometric(0.4, (n, d)) * np.where(rng.random((n, d)) < 0.3, -1, 1)
    return SparseCodes.from_dense(np.where(act, bins, 0))


def _chunks(codes, size):
    for a in range(0, codes.n, size):
        b = min(codes.n, a + size)
        lo, hi = codes.indptr[a], codes.indptr[b]
        yield SparseCodes(codes.indptr[a:b + 1] - lo, codes.indices[lo:hi], codes.bins[lo:hi], codes.d_sae)


@settings(max_examples=50, deadline=None)
@given(d=st.integers(1, 200), n=st.integers(1, 150), density=st.floats(0.0, 1.0), chunk=st.integers(1, 64),
       kind=st.sampled_from(["tree", "conditional"]), violate=st.sampled_from([0.0, 0.05]),
       seed=st.integers(0, 2**31))
def test_round_trip_is_exact_under_any_forest(d, n, density, chunk, kind, violate, seed):
    """Every forest, both kinds, including children that fire without their parent (a tree model
    gives them the smallest probability, never refuses them) and all-zero samples."""
    rng = np.random.default_rng(seed)
    parents = random_forest(rng, d)
    p, q = rng.random(d) * density, rng.random(d)
    train = forest_codes(rng, 60, parents, p, q)
    model = EntropyModel.fit(train).with_hierarchy(Hierarchy.count(train, parents, kind))
    coder = ChunkCoder(model)
    codes = forest_codes(rng, n, parents, p, q, violate)
    for part in _chunks(codes, chunk):
        assert coder.decode(coder.encode(part), part.n) == part


def test_payload_within_bounds_of_the_cross_entropy():
    rng = np.random.default_rng(1)
    d = 600
    parents = random_forest(rng, d, max_depth=6)
    p, q = rng.random(d) * 0.03, rng.random(d)
    train = forest_codes(rng, 3000, parents, p, q)
    for kind in ("tree", "conditional"):
        coder = ChunkCoder(EntropyModel.fit(train).with_hierarchy(Hierarchy.count(train, parents, kind)))
        chunks = list(_chunks(forest_codes(rng, 6000, parents, p, q), 1000))
        measured = sum(32 * len(coder.encode(c)) for c in chunks)
        H = sum(coder.ideal_bits(c)["total"] for c in chunks)
        assert H - 64 * len(chunks) <= measured <= 1.001 * H + 64 * len(chunks)


@pytest.fixture(scope="module")
def planted():
    """The toy model's true activity with a planted hierarchy (children fire only with their parent)."""
    ds = load_dataset("toy:n_features=256,d=64,l0=8,hierarchy=48,n=125000,seed=3")
    t = ds.truth

    def codes(act):
        return SparseCodes(act.indptr, act.indices, np.ones(len(act.indices), np.int32), act.n_features)
    return t, codes(t.train_activity), codes(t.test_activity)


def test_tree_coding_matches_the_formula_and_beats_flat(planted):
    """Measured activity bits of 25,000 test samples within 1% of sum_roots H(p) + sum_children
    P(parent) H(p_child | parent) (the source's true entropy here), and below the flat code."""
    truth, train, test = planted
    flat = EntropyModel.fit(train)
    tree = flat.with_hierarchy(Hierarchy.count(train, truth.parents, "tree"))
    formula = truth.entropy_bits_per_sample()
    children = truth.parents >= 0
    p = truth.probs
    by_hand = (binary_entropy(p[~children]).sum()
               + (p[truth.parents[children]] * binary_entropy(p[children] / p[truth.parents[children]])).sum())
    assert formula == pytest.approx(by_hand, rel=1e-9)
    bits = {}
    for name, model in (("flat", flat), ("tree", tree)):
        coder = ChunkCoder(model)
        words = [coder.encode(c) for c in _chunks(test, 4096)]
        assert SparseCodes.concat([coder.decode(w, c.n) for w, c in zip(words, _chunks(test, 4096))]) == test
        payload = sum(32 * len(w) for w in words)
        values = model.value_bits(test.indices, test.bins)  # one bin per feature: near zero
        bits[name] = (payload - values) / test.n
    assert bits["tree"] == pytest.approx(formula, rel=0.01)
    assert bits["tree"] < bits["flat"] - 0.5
    assert bits["flat"] == pytest.approx(binary_entropy(p).sum(), rel=0.01)
    assert tree.activity_entropy() == pytest.approx(formula, rel=0.01)


def test_chow_liu_recovers_the_planted_parents(planted):
    truth, train, _ = planted
    h = chow_liu(train)
    children = np.flatnonzero(truth.parents >= 0)
    assert np.mean(h.parents[children] == truth.parents[children]) >= 0.9
    assert h.kind == "conditional"


def test_chow_liu_costs_at_most_flat_plus_its_tables(planted, toy_model_dir):
    """On independent features (nothing to learn), on a planted hierarchy and on real SAE codes, the
    Chow-Liu code of held-out data is never longer than the flat code by more than its tables."""
    rng = np.random.default_rng(4)
    p = rng.random(300) * 0.05
    none = -np.ones(300, np.int64)
    cases = [(forest_codes(rng, 20000, none, p, p), forest_codes(rng, 20000, none, p, p))]
    _, train, test = planted
    cases.append((train, test))
    from mdlcodec.codec import Codec
    model_dir, ds = toy_model_dir
    codec = Codec.load(model_dir)
    cases.append((codec.latents(ds.train), codec.latents(ds.test)))
    for tr, te in cases:
        flat = EntropyModel.fit(tr)
        h = chow_liu(tr)
        cl = flat.with_hierarchy(h)
        flat_bits = ChunkCoder(flat).ideal_bits(te)["total"]
        cl_bits = ChunkCoder(cl).ideal_bits(te)["total"]
        assert cl_bits <= flat_bits + h.table_bits(tr.n)
    assert chow_liu(cases[0][0]).n_edges <= 3  # independent features: (almost) no edge survives


def test_flat_model_tables_are_unchanged_and_hierarchy_tables_are_checked():
    rng = np.random.default_rng(5)
    parents = random_forest(rng, 30)
    codes = forest_codes(rng, 500, parents, rng.random(30) * 0.3, rng.random(30))
    flat = EntropyModel.fit(codes)
    assert "parents" not in flat.to_arrays()
    tree = flat.with_hierarchy(Hierarchy.count(codes, parents, "tree"))
    again = EntropyModel.from_arrays(tree.to_arrays())
    assert again.fingerprint() == tree.fingerprint() != flat.fingerprint()
    assert np.array_equal(again.hierarchy.parents, parents)
    bad = tree.to_arrays()
    bad["joint_counts"] = bad["joint_counts"] + 10**6
    with pytest.raises(ValueError):
        EntropyModel.from_arrays(bad)
    cyclic = tree.to_arrays()
    cyclic["parents"] = np.roll(np.arange(30), 1)
    cyclic["joint_counts"] = np.zeros(30, np.int64)
    with pytest.raises(ValueError):
        EntropyModel.from_arrays(cyclic)


def test_prune_to_forest_drops_children_of_inactive_parents():
    parents = np.array([-1, 0, 1, -1, 3])
    dense = np.array([[0, 2, 3, 1, 0],    # 1 and its child 2 lose their parent 0
                      [1, 0, 4, 0, 5],    # 2 loses parent 1, 4 loses parent 3
                      [1, 1, 1, 1, 1]])   # all kept
    pruned = prune_to_forest(SparseCodes.from_dense(dense), parents).to_dense()
    assert pruned.tolist() == [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
