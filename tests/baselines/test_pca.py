"""mdlcodec.baselines.pca: PCA transform coding meets a target MSE with the fewest bits, and is
nearly lossless at a fine step."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.baselines import PCA, match_pca, pca_codec


def test_pca_codec_meets_target_mse_and_round_trips(data):
    train, test = data
    pca = PCA.fit(train)
    assert np.allclose(pca.components @ pca.components.T, np.eye(16), atol=1e-9)
    target = 0.05
    match = match_pca(pca, train, test, target)
    data_bytes = match.codec.encode(test)
    x_hat = match.codec.decode(data_bytes)
    mse = float(np.mean((x_hat.astype(np.float64) - test) ** 2))
    assert mse <= target
    assert mse > 0.5 * target  # the coarsest step uses the budget
    assert np.array_equal(x_hat, match.codec.reconstruct(match.codec.latents(test)))
    usable = [r for r in match.search if r["step"] is not None]
    assert match.m == min(usable, key=lambda r: r["cross_entropy_bits_per_sample"])["m"]
    # measured bits match the ideal code length of the chosen point (plus a header of a few hundred bytes)
    ideal = next(r for r in usable if r["m"] == match.m)["cross_entropy_bits_per_sample"]
    assert ideal <= 8 * len(data_bytes) / len(test) <= ideal + 8 * 600 / len(test)


def test_pca_codec_with_fine_step_is_nearly_lossless(data):
    train, test = data
    codec = pca_codec(PCA.fit(train), 16, 1e-4, train)
    assert np.max(np.abs(codec.decode(codec.encode(test)) - test)) < 1e-3


def test_pca_of_a_shard_folder_is_read_in_chunks_and_matches_in_memory(tmp_path, monkeypatch):
    from mdlcodec.data.shards import ShardedRows, open_shards
    from tests.data.test_shards import write_shards

    x = (np.random.default_rng(2).standard_normal((5000, 6)) @ np.diag([5, 3, 2, 1, 0.5, 0.1]) + 7).astype(np.float32)
    write_shards(tmp_path / "s", x, 700)
    monkeypatch.setattr(ShardedRows, "__array__", lambda *a, **k: pytest.fail("PCA read the folder whole"))
    lazy, whole = PCA.fit(open_shards(tmp_path / "s")), PCA.fit(x)
    np.testing.assert_allclose(lazy.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(lazy.variances, whole.variances, rtol=1e-9)
    np.testing.assert_allclose(np.abs((lazy.components * whole.components).sum(1)), 1, rtol=1e-9)
