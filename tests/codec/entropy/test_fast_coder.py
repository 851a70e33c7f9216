"""The fast chunk coder (issue 13) writes exactly the version-2 streams of the straightforward one: random codes
(several table sizes, escapes, flat models and feature forests) are encoded by ChunkCoder and by the
old per-feature coder kept in tests/codec/reference_coder.py, and the words must match byte for
byte; each decodes the other's words. The two constriction shortcuts the fast coder relies on are
checked on their own: activity bits through a two-symbol Categorical (every 24-bit probability),
value symbols through their precomputed intervals (EntropyModel.value_cdf)."""

import constriction
import numpy as np
import pytest

from mdlcodec.codec.entropy.activity import _bit_length
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.entropy.hierarchy import Hierarchy, prune_to_forest
from mdlcodec.codec.format.bitstream import ChunkCoder, _bit_rows, _interval_rows
from mdlcodec.codec.sparse import SparseCodes
from tests.codec.helpers import random_codes
from tests.codec.reference_coder import ReferenceCoder

_CAT = constriction.stream.model.Categorical(perfect=False)


def _random_forest(rng, d_sae: int, depth: int) -> np.ndarray:
    """parents [d_sae]: each feature's parent a random feature of the layer above (layers of random sizes)."""
    layer = rng.integers(0, depth + 1, d_sae)
    layer[rng.integers(0, d_sae)] = 0
    parents = np.full(d_sae, -1, dtype=np.int64)
    for f in range(d_sae):
        above = np.flatnonzero(layer == layer[f] - 1)
        if layer[f] > 0 and len(above):
            parents[f] = rng.choice(above)
        else:
            layer[f] = 0
    return parents


def _correlated_codes(rng, n, d_sae, parents, p):
    """Codes in which a child fires mostly with its parent (a forest has something to code)."""
    dense = random_codes(rng, n, d_sae, p).to_dense()
    depth = np.zeros(d_sae, dtype=np.int64)
    for f in range(d_sae):
        g, k = parents[f], 0
        while g >= 0:
            g, k = parents[g], k + 1
        depth[f] = k
    for f in np.argsort(depth, kind="stable"):  # parents before their children
        g = parents[f]
        if g >= 0:
            follow = rng.random(n) < 0.7
            dense[follow, f] = np.where(dense[follow, g] != 0, rng.integers(1, 5, int(follow.sum())), 0)
    return SparseCodes.from_dense(dense)


def _assert_same_streams(model: EntropyModel, chunks: list[SparseCodes]) -> None:
    """Format version 2: ChunkCoder writes the reference coder's words and each decodes the other's;
    version 3 (another stream, tests/codec/entropy/test_occupancy.py) decodes its own words exactly."""
    fast, ref, v3 = ChunkCoder(model, 2), ReferenceCoder(model), ChunkCoder(model, 3)
    for codes in chunks:
        words = fast.encode(codes)
        assert np.array_equal(words, ref.encode(codes))
        assert fast.decode(words, codes.n) == codes
        assert ref.decode(words, codes.n) == codes
        assert v3.decode(v3.encode(codes), codes.n) == codes


@pytest.mark.parametrize("seed", range(6))
def test_fast_coder_writes_the_reference_streams(seed):
    rng = np.random.default_rng(seed)
    d_sae = int(rng.choice([1, 7, 64, 300, 1000]))
    p = rng.random(d_sae) * rng.choice([0.02, 0.1, 0.5])
    train = random_codes(rng, 200, d_sae, p)
    max_bins = int(rng.choice([1, 3, 16, 4096]))  # narrow tables: many escapes; several sizes T_f
    flat = EntropyModel.fit(train, max_table_bins=max_bins)
    chunks = []
    for n in (1, 17, 150):
        codes = random_codes(rng, n, d_sae, p)
        if seed % 2:  # outliers far outside the tables
            codes.bins[::3] *= 1000003
        chunks.append(codes)
    chunks.append(SparseCodes.from_dense(np.zeros((5, d_sae), int)))
    _assert_same_streams(flat, chunks)


@pytest.mark.parametrize("kind,seed", [("conditional", 0), ("conditional", 1), ("tree", 2), ("tree", 3)])
def test_fast_coder_matches_the_reference_under_a_forest(kind, seed):
    rng = np.random.default_rng(seed)
    d_sae = 200
    parents = _random_forest(rng, d_sae, depth=4)
    p = rng.random(d_sae) * 0.08
    train = _correlated_codes(rng, 400, d_sae, parents, p)
    chunks = [_correlated_codes(rng, n, d_sae, parents, p) for n in (1, 30, 200)]
    if kind == "tree":
        train = prune_to_forest(train, parents)
        chunks = [prune_to_forest(c, parents) for c in chunks]
    model = EntropyModel.fit(train, max_table_bins=8).with_hierarchy(Hierarchy.count(train, parents, kind))
    _assert_same_streams(model, chunks)


def test_extreme_counts_and_near_certain_values():
    """Counts near 2**62 (float64 weights rounded, as constriction receives them) and a feature whose
    table is all but certain (an interval of 2**24 - 1: coded with the feature's own model)."""
    rng = np.random.default_rng(5)
    d_sae = 6
    n = 1 << 62
    lo = np.array([1, -2, 1, 1, 3, -1], dtype=np.int32)
    sizes = np.array([1, 3, 1, 2, 5, 1])
    offsets = np.r_[0, np.cumsum(sizes)]
    counts = rng.integers(0, 1 << 40, offsets[-1]).astype(np.int64)
    counts[offsets[0]] = n - 7  # feature 0: one bin all but certain
    counts[offsets[2]] = 1 << 61
    counts[offsets[4]:offsets[5]] = [(1 << 62) - 5, 3, 0, 1 << 50, 2]
    escapes = np.array([0, 5, 1 << 61, 0, 0, 1 << 52], dtype=np.int64)
    active = np.add.reduceat(counts, offsets[:-1]) + escapes
    active = np.minimum(active, n)
    model = EntropyModel(n, active, lo, offsets.astype(np.int64), counts, escapes)
    dense = np.where(rng.random((300, d_sae)) < 0.6, rng.integers(-3, 8, (300, d_sae)), 0)
    dense[:, 0] = np.where(rng.random(300) < 0.9, 1, 0)  # long runs of the near-certain symbol
    codes = SparseCodes.from_dense(dense)
    starts, cdf = model.value_cdf
    assert (np.diff(cdf[starts[0]:starts[1]]) == [(1 << 24) - 1, 1]).all()
    _assert_same_streams(model, [codes, SparseCodes.from_dense(dense[:7])])


def test_value_intervals_are_constrictions_own():
    """Each symbol coded through its precomputed interval (three-symbol rows) gives the same stream as
    the feature's own Categorical, for tables of 2 to 300 symbols with counts of every magnitude."""
    rng = np.random.default_rng(7)
    for T in (2, 3, 5, 40, 300):
        for magnitude in (10, 1 << 20, 1 << 45, 1 << 61):
            w = rng.integers(0, magnitude, T).astype(np.float64) + 1.0
            model = constriction.stream.model.Categorical(w, perfect=False)
            counts = (w - 1).astype(np.int64)
            em = EntropyModel(1 << 62, np.array([counts.sum()]), np.array([1], np.int32),
                              np.array([0, T - 1]), counts[:-1], counts[-1:])
            _, cdf = em.value_cdf
            sym = rng.integers(0, T, 500).astype(np.int32)
            a = constriction.stream.stack.AnsCoder()
            a.encode_reverse(sym, model)
            left = cdf[sym]
            width = cdf[sym + 1] - left
            narrow = width <= (1 << 24) - 2
            s3, rows = _interval_rows(left[narrow], width[narrow])
            b = constriction.stream.stack.AnsCoder()
            b.encode_reverse(s3, _CAT, rows)
            ref = constriction.stream.stack.AnsCoder()
            ref.encode_reverse(sym[narrow], model)
            assert np.array_equal(b.get_compressed(), ref.get_compressed()), (T, magnitude)


def test_bits_through_two_symbol_rows_match_bernoulli_for_every_probability():
    """All 2**24 - 1 fixed-point probabilities, each coding a 0 and a 1: the same words as Bernoulli."""
    bern = constriction.stream.model.Bernoulli(perfect=False)
    k = np.arange(1, 1 << 24, dtype=np.int64)
    rng = np.random.default_rng(0)
    for part in np.array_split(k, 4):
        p = part.astype(np.float64) / (1 << 24)
        for bits in (np.r_[np.zeros(len(p) - 1, np.int32), 1].astype(np.int32),
                     np.ones(len(p), np.int32), rng.integers(0, 2, len(p)).astype(np.int32)):
            a = constriction.stream.stack.AnsCoder()
            a.encode_reverse(bits, bern, p)
            b = constriction.stream.stack.AnsCoder()
            b.encode_reverse(bits, _CAT, _bit_rows(p))
            assert np.array_equal(a.get_compressed(), b.get_compressed())


def test_bit_length_is_exact_for_every_int64():
    rng = np.random.default_rng(1)
    x = np.r_[1, 2, 3, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, (1 << 54) - 1, (1 << 63) - 1,
              rng.integers(1, 1 << 63, 2000), rng.integers(1, 1 << 30, 2000)].astype(np.int64)
    assert _bit_length(x).tolist() == [int(v).bit_length() for v in x]


def test_models_too_large_for_the_interval_table_fall_back_to_per_feature_calls(monkeypatch):
    """Without the cached intervals (a model beyond MAX_CDF_BYTES) the coder writes the same streams."""
    from mdlcodec.codec.entropy import entropy_model

    monkeypatch.setattr(entropy_model, "MAX_CDF_BYTES", 0)
    rng = np.random.default_rng(11)
    p = rng.random(50) * 0.2
    model = EntropyModel.fit(random_codes(rng, 300, 50, p), max_table_bins=4)
    assert model.value_cdf is None
    _assert_same_streams(model, [random_codes(rng, 40, 50, p)])
