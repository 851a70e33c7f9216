"""data.stream.ShuffleStream: every row once per epoch, held-out rows never, the same batches for the
same seed, a buffer smaller than the data, shards visited in a seeded order."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.data.shards import open_shards
from mdlcodec.data.stream import ShuffleStream, blocks, kept_rows
from tests.data.test_shards import write_shards


@pytest.fixture
def rows(tmp_path):
    """A shard folder of 1,000 rows [1000, 3] in shards of 64 (the last one shorter); column 0 is the row number."""
    x = np.random.default_rng(1).standard_normal((1000, 3)).astype(np.float32)
    x[:, 0] = np.arange(1000)
    write_shards(tmp_path / "s", x, 64)
    return open_shards(tmp_path / "s"), x


def _epoch_ids(stream: ShuffleStream, epoch: int) -> np.ndarray:
    return np.concatenate([ids for ids, _ in stream.epoch(epoch, with_ids=True)])


def test_blocks_are_the_shards_of_the_view(rows):
    x, _ = rows
    assert blocks(x)[:2] == [(0, 64), (64, 128)] and blocks(x)[-1] == (960, 1000)
    assert blocks(x.rows(100, 300)) == [(0, 28), (28, 92), (92, 156), (156, 200)]
    assert blocks(np.zeros((70_000, 2))) == [(0, 65_536), (65_536, 70_000)]


def test_every_row_once_per_epoch_and_batches_are_the_rows(rows):
    x, data = rows
    s = ShuffleStream(x, batch_size=50, seed=3, buffer_rows=200)  # the buffer holds 5 of 16 shards
    for epoch in (1, 2):
        got = list(s.epoch(epoch, with_ids=True))
        assert len(got) == s.steps_per_epoch == 20
        ids = np.concatenate([i for i, _ in got])
        assert sorted(ids.tolist()) == list(range(1000))
        for i, b in got:
            assert b.shape == (50, 3) and b.dtype == np.float32
            np.testing.assert_array_equal(b, data[i])
    assert not np.array_equal(_epoch_ids(s, 1), _epoch_ids(s, 2))
    assert not np.array_equal(np.sort(_epoch_ids(s, 1)[:200]), np.arange(200))  # not in file order


def test_remainder_is_dropped_and_no_row_repeats(rows):
    x, _ = rows
    s = ShuffleStream(x, batch_size=96, seed=0, buffer_rows=100)
    ids = _epoch_ids(s, 1)
    assert len(ids) == 96 * (1000 // 96) and len(set(ids.tolist())) == len(ids)


def test_excluded_rows_are_never_yielded(rows):
    x, _ = rows
    held = np.sort(np.random.default_rng(5).choice(1000, 100, replace=False))
    s = ShuffleStream(x, batch_size=30, seed=1, buffer_rows=128, exclude=held)
    assert s.n_rows == 900 and s.steps_per_epoch == 30
    ids = _epoch_ids(s, 1)
    assert not set(ids.tolist()) & set(held.tolist()) and len(set(ids.tolist())) == 900
    assert not set(np.concatenate([i for i, _ in s.pieces()]).tolist()) & set(held.tolist())
    sample = s.sample(300, 7)
    assert len(sample) == 300 and not set(sample[:, 0].astype(int).tolist()) & set(held.tolist())


def test_same_seed_same_batches_other_seed_other(rows):
    x, _ = rows
    a, b, c = (ShuffleStream(x, 40, seed, 256) for seed in (4, 4, 5))
    for epoch in (1, 2):
        for ba, bb in zip(a.epoch(epoch), b.epoch(epoch), strict=True):
            np.testing.assert_array_equal(ba, bb)
    assert not np.array_equal(_epoch_ids(a, 1), _epoch_ids(c, 1))


def test_in_memory_array_streams_too():
    data = np.arange(40, dtype=np.float32).reshape(20, 2)
    s = ShuffleStream(data, 4, 0, 8)
    ids = _epoch_ids(s, 1)
    assert sorted(ids.tolist()) == list(range(20))


def test_sum_of_squares_leaves_out_the_held_out_rows(rows):
    x, data = rows
    held = np.array([3, 500, 999])
    keep = np.setdiff1d(np.arange(1000), held)
    got = ShuffleStream(x, 10, 0, 100, exclude=held).sum_of_squares()
    assert got == pytest.approx(float((data[keep].astype(np.float64) ** 2).sum()), rel=1e-12)


def test_kept_rows_skips_the_excluded():
    excluded = np.array([0, 2, 3, 7])
    kept = np.setdiff1d(np.arange(12), excluded)
    np.testing.assert_array_equal(kept_rows(excluded, np.arange(len(kept))), kept)
