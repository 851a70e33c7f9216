"""mdlcodec.codec.format.bitstream, the entropy coder on its own: exact round trips, bits against theory,
known-source entropy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.format.bitstream import ChunkCoder
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.theory import binary_entropy
from tests.codec.helpers import random_codes


@settings(max_examples=60, deadline=None)
@given(d_sae=st.integers(1, 300), n=st.integers(1, 200), density=st.floats(0, 1), chunk=st.integers(1, 64),
       seed=st.integers(0, 2**31))
def test_round_trip_is_exact(d_sae, n, density, chunk, seed):
    rng = np.random.default_rng(seed)
    p = np.clip(rng.random(d_sae) * density, 0, 1)
    train = random_codes(rng, 50, d_sae, p)
    coder = ChunkCoder(EntropyModel.fit(train))
    codes = random_codes(rng, n, d_sae, p)
    if seed % 5 == 0:  # outliers far outside the tables must be escaped, not refused
        codes.bins[: len(codes.bins) // 2] *= 1000003
    for s in range(0, n, chunk):
        part = _rows(codes, s, min(n, s + chunk))
        assert coder.decode(coder.encode(part), part.n) == part


def _rows(codes, a, b):
    lo, hi = codes.indptr[a], codes.indptr[b]
    return SparseCodes(codes.indptr[a:b + 1] - lo, codes.indices[lo:hi], codes.bins[lo:hi], codes.d_sae)


def test_all_zero_and_single_sample():
    rng = np.random.default_rng(0)
    coder = ChunkCoder(EntropyModel.fit(random_codes(rng, 100, 40, np.full(40, 0.1))))
    for codes in (SparseCodes.from_dense(np.zeros((7, 40), int)), SparseCodes.from_dense(np.zeros((1, 40), int)),
                  random_codes(rng, 1, 40, np.full(40, 0.5))):
        assert coder.decode(coder.encode(codes), codes.n) == codes


@pytest.mark.parametrize("d_sae,density", [(64, 0.05), (1000, 0.01), (4096, 0.004)])
def test_measured_bits_match_cross_entropy(d_sae, density):
    """Payload bits within [H - 64c, 1.001 H + 64c], H the cross-entropy of the coded symbols under the model."""
    rng = np.random.default_rng(1)
    p = rng.random(d_sae) * 2 * density
    coder = ChunkCoder(EntropyModel.fit(random_codes(rng, 3000, d_sae, p)))
    chunks = [random_codes(rng, 500, d_sae, p) for _ in range(4)]
    measured = sum(32 * len(coder.encode(c)) for c in chunks)
    H = sum(coder.ideal_bits(c)["total"] for c in chunks)
    c = len(chunks)
    assert H - 64 * c <= measured <= 1.001 * H + 64 * c


def test_bits_approach_true_entropy_of_known_source():
    """100,000 samples from a known source: bits per sample within 1% of its true entropy."""
    rng = np.random.default_rng(3)
    d_sae = 64
    p = 3.0 * (1 / np.arange(1, d_sae + 1)) / (1 / np.arange(1, d_sae + 1)).sum()
    value_probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    h_value = -(value_probs * np.log2(value_probs)).sum()
    true_entropy = float((binary_entropy(p) + p * h_value).sum())
    coder = ChunkCoder(EntropyModel.fit(random_codes(rng, 100_000, d_sae, p, value_probs)))
    test = random_codes(rng, 100_000, d_sae, p, value_probs)
    measured = sum(32 * len(coder.encode(_rows(test, s, min(test.n, s + 10_000)))) for s in range(0, test.n, 10_000))
    assert measured / test.n == pytest.approx(true_entropy, rel=0.01)
    # No code beats the true distribution on average: measured bits may fall below this sample's
    # log-loss under the true source only by the tiny model-versus-truth fluctuation.
    dense = test.to_dense()
    active = dense != 0
    true_logloss = -(np.log2(np.where(active, p, 1 - p)).sum()
                     + np.log2(value_probs[dense[active] - 1]).sum())
    assert measured > true_logloss * (1 - 1e-3)
