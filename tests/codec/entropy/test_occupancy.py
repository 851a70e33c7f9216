"""Format version 3's activity coding (codec/entropy/occupancy.py): streams decode exactly (random codes,
escapes, flat, conditional and tree forests, extreme counts), the payload is the cross-entropy
within 0.1% and no longer than version 2's by more than 0.5%, the integer rule gives constriction's
own intervals, and the decoder refuses every pattern the encoder never writes."""

import constriction
import numpy as np
import pytest

from mdlcodec.codec.entropy import occupancy
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.hierarchy import Hierarchy, prune_to_forest
from mdlcodec.codec.entropy.occupancy import ContextPatterns, OccupancyTables, level_bits, occupancy_symbols
from mdlcodec.codec.format.bitstream import ChunkCoder, StreamError, _interval_rows
from mdlcodec.codec.sparse import SparseCodes
from tests.codec.helpers import random_codes
from tests.codec.entropy.test_fast_coder import _correlated_codes, _random_forest

_CAT = constriction.stream.model.Categorical(perfect=False)


def _payload(coder: ChunkCoder, codes: SparseCodes) -> int:
    words = coder.encode(codes)
    assert coder.decode(words, codes.n) == codes
    return 32 * len(words)


def _forest_model(rng, kind: str, d_sae: int = 300, n: int = 3000, p_max: float = 0.05):
    parents = _random_forest(rng, d_sae, depth=4)
    roots, depth1 = np.flatnonzero(parents < 0), np.flatnonzero((parents >= 0) & (parents[np.maximum(parents, 0)] < 0))
    parents[depth1[:20]] = roots[0]  # a hub: a feature with more than HUB_CHILDREN children
    p = rng.random(d_sae) * p_max
    train = _correlated_codes(rng, n, d_sae, parents, p)
    test = _correlated_codes(rng, n, d_sae, parents, p)
    if kind == "tree":
        train, test = prune_to_forest(train, parents), prune_to_forest(test, parents)
    return EntropyModel.fit(train).with_hierarchy(Hierarchy.count(train, parents, kind)), test


def test_level_bits_cover_the_features_with_8_way_nodes_below_the_root():
    assert level_bits(1) == [0, 1]
    assert level_bits(8) == [0, 3]
    assert level_bits(9) == [0, 1, 4]
    assert level_bits(16384) == [0, 2, 5, 8, 11, 14]
    for d in range(1, 3000, 7):
        b = level_bits(d)
        assert 1 << b[-1] >= d > 1 << (b[-1] - 1) or d == 1
        assert all(3 == y - x for x, y in zip(b[1:], b[2:])) and 1 <= b[1] <= 3


@pytest.mark.parametrize("seed", range(6))
def test_random_flat_codes_decode_exactly_at_the_cross_entropy(seed):
    rng = np.random.default_rng(seed)
    d_sae = int(rng.choice([1, 7, 8, 9, 64, 300, 1000]))
    p = rng.random(d_sae) * rng.choice([0.02, 0.1, 0.5])
    max_bins = int(rng.choice([1, 3, 16, 4096]))  # narrow tables: many escapes
    model = EntropyModel.fit(random_codes(rng, 500, d_sae, p), max_table_bins=max_bins)
    coder = ChunkCoder(model, 3)
    for n in (1, 17, 150):
        codes = random_codes(rng, n, d_sae, p)
        if seed % 2:
            codes.bins[::3] *= 1000003  # outliers far outside the tables
        _payload(coder, codes)
    _payload(coder, SparseCodes.from_dense(np.zeros((5, d_sae), int)))
    big = random_codes(rng, 4000, d_sae, p)
    ideal = coder.ideal_bits(big)["total"]
    assert _payload(coder, big) == pytest.approx(ideal, rel=1e-3, abs=64)


@pytest.mark.parametrize("kind,seed,p_max", [("conditional", 0, 0.05), ("conditional", 1, 0.5), ("tree", 2, 0.05),
                                             ("tree", 3, 0.5)])
def test_forests_decode_exactly_at_the_cross_entropy_and_as_short_as_version_2(kind, seed, p_max):
    """Sparse features (children of active parents rarely fire alone, below the masking threshold) and
    dense ones (masked exactly, their nodes coded with rows of weights derived per sample)."""
    rng = np.random.default_rng(seed)
    model, test = _forest_model(rng, kind, p_max=p_max)
    v3 = ChunkCoder(model, 3)
    tables = v3.model.occupancy_tables
    assert len(tables.bit_children) and tables.hubs(np.arange(300)).any()  # children as bits and as hubs' trees
    masked = [s for s in occupancy_symbols(test, model.occupancy_tables).steps if isinstance(s, ContextPatterns)]
    assert bool(masked) == (kind == "conditional")  # a tree's children never fire alone: nothing to mask
    for n in (1, 30):
        _payload(v3, SparseCodes(test.indptr[:n + 1], test.indices[:test.indptr[n]], test.bins[:test.indptr[n]], 300))
    payload = _payload(v3, test)
    assert payload == pytest.approx(v3.ideal_bits(test)["total"], rel=1e-3)
    assert payload <= 1.005 * _payload(ChunkCoder(model, 2), test)


def test_flat_payload_is_version_2s_within_half_a_percent():
    rng = np.random.default_rng(3)
    for d_sae, l0 in ((128, 16), (1024, 30), (4096, 64)):
        p = rng.gamma(0.5, 2 * l0 / d_sae, d_sae).clip(0, 0.9)
        model = EntropyModel.fit(random_codes(rng, 2000, d_sae, p))
        test = random_codes(rng, 1000, d_sae, p)
        v2, v3 = _payload(ChunkCoder(model, 2), test), _payload(ChunkCoder(model, 3), test)
        assert v3 <= 1.005 * v2, (d_sae, v2, v3)


def test_about_four_symbols_per_active_latent_at_16384_features_and_l0_64():
    """Patterns and value symbols together; version 2 coded 12.7 binary activity decisions alone."""
    rng = np.random.default_rng(0)
    d_sae = 16384
    p = np.full(d_sae, 64 / d_sae)
    codes = random_codes(rng, 256, d_sae, p)
    model = EntropyModel.fit(codes)
    occ = occupancy_symbols(codes, model.occupancy_tables)
    patterns = occ.symbol_count()
    assert 2.0 < patterns / codes.nnz < 2.8
    assert (patterns + codes.nnz) / codes.nnz <= 4


def test_extreme_counts():
    """Counts near 2**62: features all but certain (products of 2**32, an interval of 2**24 - 2**k + 1)
    and all but impossible (products of 0), flat and under a conditional forest."""
    rng = np.random.default_rng(5)
    d_sae = 20
    n = 1 << 62
    active = np.array([n, n - 1, 0, 1, 1 << 61] * 4, dtype=np.int64)
    model = EntropyModel(n, active, np.ones(d_sae, np.int32), np.arange(d_sae + 1, dtype=np.int64), active.copy(),
                         np.zeros(d_sae, np.int64))
    for c in model.occupancy_tables.layers[0].cdf:
        assert (c[:, -1] == 1 << 24).all() and (np.diff(c, axis=1) >= 1).all()
    dense = np.zeros((300, d_sae), int)
    dense[:, active == n] = 1
    dense[:, active == n - 1] = rng.random((300, 4)) < 0.999
    dense[:, active == 1 << 61] = rng.random((300, 4)) < 0.5
    dense[::50, active == 0] = 1  # the impossible, now and then
    codes = SparseCodes.from_dense(dense)
    _payload(ChunkCoder(model, 3), codes)
    parents = np.r_[-1, 0, 1, -1, 3, np.full(d_sae - 5, -1)].astype(np.int64)
    joint = np.zeros(d_sae, np.int64)
    joint[[1, 2, 4]] = [n - 1, 0, 1]
    forest = model.with_hierarchy(Hierarchy(parents, joint, "conditional"))
    _payload(ChunkCoder(forest, 3), codes)


def test_node_models_give_the_integer_rules_intervals():
    """Every node's constriction model codes each mask in exactly its interval of ``cdf``: the same
    words as the three-symbol rows of those intervals, for flat and forest tables of many sizes."""
    rng = np.random.default_rng(2)
    for d_sae in (3, 9, 100, 600):
        a = rng.integers(0, 1000, d_sae)
        tables = OccupancyTables.from_counts(a, 1000).layers[0]
        for j, c in enumerate(tables.cdf):
            assert (c[:, -1] == 1 << 24).all()
            if j:
                assert (c[:, 1] - c[:, 0] == 1).all()  # mask 0 below the root: one slot, never coded
            for p in rng.choice(len(c), min(len(c), 5), replace=False):
                k = c.shape[1] - 1
                masks = rng.integers(0, k, 300).astype(np.int32)
                left, width = c[p, masks], c[p, masks + 1] - c[p, masks]
                ok = width <= (1 << 24) - 2
                s3, rows = _interval_rows(left[ok], width[ok])
                x, y = constriction.stream.stack.AnsCoder(), constriction.stream.stack.AnsCoder()
                x.encode_reverse(masks[ok], tables.model(j, int(p)))
                y.encode_reverse(s3, _CAT, rows)
                assert np.array_equal(x.get_compressed(), y.get_compressed()), (d_sae, j, p)


# -- the decoder refuses what the encoder never writes ---------------------------------------------

def _stream(steps: list) -> np.ndarray:
    """Words of hand-made activity symbols in decoding order: (tree, level, node, masks) patterns
    and (bits, probs) forest bits."""
    coder = constriction.stream.stack.AnsCoder()
    for step in reversed(steps):
        if len(step) == 4:
            tree, j, p, masks = step
            coder.encode_reverse(np.array(masks, np.int32), tree.model(j, p))
        else:
            bits, probs = step
            coder.encode_reverse(np.array(bits, np.int32), _CAT, np.stack([1 - np.array(probs), np.array(probs)], 1))
    return coder.get_compressed()


def test_an_active_node_without_an_active_child_is_refused():
    model = EntropyModel.fit(random_codes(np.random.default_rng(0), 100, 16, np.full(16, 0.2)))
    tree = model.occupancy_tables.layers[0]
    assert tree.levels == [0, 1, 4]
    words = _stream([(tree, 0, 0, [1]), (tree, 1, 0, [0])])  # node 0 active, with no active leaf
    with pytest.raises(StreamError, match="no active child"):
        ChunkCoder(model, 3).decode(words, 1)


def test_a_padding_feature_is_refused():
    model = EntropyModel.fit(random_codes(np.random.default_rng(0), 100, 12, np.full(12, 0.2)))
    tree = model.occupancy_tables.layers[0]
    words = _stream([(tree, 0, 0, [2]), (tree, 1, 1, [1 << 4])])  # leaf 12 of 12 features
    with pytest.raises(StreamError, match="padding"):
        ChunkCoder(model, 3).decode(words, 1)


def test_a_feature_coded_without_its_parent_while_the_parent_fires_is_refused():
    train = SparseCodes.from_dense(np.array([[1, 1]] * 10 + [[1, 0]] * 10 + [[0, 0]] * 200))
    model = EntropyModel.fit(train).with_hierarchy(Hierarchy.count(train, np.array([-1, 0]), "conditional"))
    tables = model.occupancy_tables
    roots, children = tables.layers
    assert not children.exact[0]  # P(1 | 0 inactive) < 2**-6: not masked, its own node model codes it
    # feature 0 fires; its child 1's bit says "off"; then layer 1's tree codes 1 as firing without its parent
    words = _stream([(roots, 0, 0, [1]), ([0], [tables.on_prob[1]]), (children, 0, 0, [1])])
    with pytest.raises(StreamError, match="active parent"):
        ChunkCoder(model, 3).decode(words, 1)


def test_forest_bits_beyond_the_limit_are_refused_both_ways(monkeypatch):
    rng = np.random.default_rng(1)
    model, test = _forest_model(rng, "conditional", n=200)
    coder = ChunkCoder(model, 3)
    words = coder.encode(test)
    monkeypatch.setattr(occupancy, "MAX_CHUNK_DECISIONS", 10)
    with pytest.raises(occupancy.ChunkTooLarge, match="children"):
        coder.encode(test)
    with pytest.raises(StreamError, match="children of active features to list"):
        coder.decode(words, test.n)


def test_an_escaped_bin_inside_its_table_is_refused():
    """The same bin as a table symbol and as an escape would be two streams for one content."""
    model = EntropyModel(4, np.array([4]), np.array([1], np.int32), np.array([0, 2]), np.array([2, 1]),
                         np.array([1]))  # bins 1 and 2 in the table, one escape
    coder = ChunkCoder(model, 3)
    one = SparseCodes.from_dense(np.array([[1]]))
    good = coder.encode(one)
    bad = constriction.stream.stack.AnsCoder()  # bin 1 sent as an escape symbol, then as a raw 32-bit bin
    coder._push(bad, np.array([0]), np.array([model.table_sizes[0]], np.int32), np.array([1]),
                occupancy_symbols(one, model.occupancy_tables))
    bad = bad.get_compressed()
    assert not np.array_equal(bad, good)
    with pytest.raises(StreamError, match="not what the encoder writes"):
        coder.decode(bad, 1)
