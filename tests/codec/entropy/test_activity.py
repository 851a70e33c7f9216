"""mdlcodec.codec.entropy.activity: activity costs the sum of the features' entropies; the fixed-point
tables depend only on the counts."""

import numpy as np
import pytest

from mdlcodec.codec.entropy.activity import ActivityTables
from mdlcodec.codec.entropy.entropy_model import EntropyModel
from mdlcodec.codec.format.bitstream import ChunkCoder
from mdlcodec.theory import binary_entropy
from tests.codec.helpers import random_codes


def test_activity_costs_sum_of_feature_entropies():
    """Binary-split activity coding costs sum_f H(p_f) per sample under the model, in expectation."""
    rng = np.random.default_rng(2)
    d_sae = 500
    em = EntropyModel.fit(random_codes(rng, 2000, d_sae, rng.random(d_sae) * 0.05))
    tables = ActivityTables.from_counts(em.active_counts, em.n_samples)
    p_model = em.p_active
    # Draw samples from the model itself: the average code length must approach its entropy.
    codes = random_codes(rng, 20000, d_sae, p_model)
    coder = ChunkCoder(em)
    per_sample = coder.ideal_bits(codes)["activity"] / codes.n
    expected = binary_entropy(p_model).sum()
    assert per_sample == pytest.approx(expected, rel=0.01)
    assert tables.layers[0].prob[1:].min() > 0 and tables.layers[0].prob[1:].max() < 1


def test_fixed_point_tables_depend_only_on_counts():
    counts = np.array([0, 5, 17, 1000, 3])
    a = ActivityTables.from_counts(counts, 1000)
    b = ActivityTables.from_counts(counts.astype(np.int32), 1000)
    a, b = a.layers[0], b.layers[0]
    assert a.levels == 3 and np.array_equal(a.prob, b.prob)
    assert np.all(a.prob[1:] * (1 << 24) == np.round(a.prob[1:] * (1 << 24)))
