"""models.train_sae on a shard folder: streamed (data.stream), never loaded whole; the same seed gives
bit-identical weights; the test split and the held-out rows are never trained on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdlcodec.data import load_dataset
from mdlcodec.data.dataset import split_index
from mdlcodec.data.shards import ShardedRows, open_shards
from mdlcodec.models import SAEConfig, TrainConfig, evaluate, train_sae
from tests.data.test_shards import write_shards

pytestmark = pytest.mark.usefixtures("one_thread")


class Tracked(ShardedRows):
    """A ShardedRows that records the rows (of the whole folder) each read returns, and refuses np.asarray."""

    def __init__(self, x: ShardedRows, start: int, stop: int) -> None:
        super().__init__(x.files, x.counts, x.d, x.stored_dtype, np.float32, start, stop, x.name)
        self.read: list[np.ndarray] = []

    def _read_range(self, a, b):
        self.read.append(np.arange(self.start + a, self.start + b))
        return super()._read_range(a, b)

    def _read_indices(self, idx):
        self.read.append(self.start + np.asarray(idx))
        return super()._read_indices(idx)

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("training loaded the shards whole")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    ds = load_dataset("toy:n=1500")
    x = np.concatenate([ds.train, ds.test])
    d = tmp_path_factory.mktemp("acts") / "s"
    write_shards(d, x, 100)
    return d


QUICK = {"progress": False, "epochs": 3, "batch_size": 64, "shuffle_buffer": 256}  # the buffer: 256 of 1,200 rows


def _train(folder, seed=0, **kw):
    x = open_shards(folder, np.float32)
    n_train = split_index(len(x), "x")
    train = Tracked(x, 0, n_train)
    sae, result = train_sae(SAEConfig("batchtopk", x.d, 16, k=2), train, None, TrainConfig(seed=seed, **QUICK, **kw))
    return sae, result, train, n_train


def test_same_seed_gives_bit_identical_weights_from_a_shard_folder(folder):
    runs = [_train(folder, s)[0] for s in (7, 7, 8)]
    a, b, c = (r.state_dict() for r in runs)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert runs[0].cfg == runs[1].cfg
    assert not torch.equal(a["W_dec"], c["W_dec"])


def test_streamed_training_reads_only_the_training_split_and_learns(folder):
    sae, result, train, n_train = _train(folder)
    assert len(result.history) == 3
    read = np.concatenate(train.read)
    assert read.max() < n_train  # the test split (the folder's last fifth) is never read
    ds = load_dataset(str(folder))
    ev = evaluate(sae, ds.test)
    assert result.history[-1]["val_mse"] < result.history[0]["val_mse"]
    mem, _ = train_sae(sae.cfg.__class__("batchtopk", ds.d, 16, k=2), np.asarray(ds.train), None,
                       TrainConfig(**QUICK))  # the same rows in memory, shuffled whole
    assert ev["fvu"] < 1.25 * evaluate(mem, ds.test)["fvu"]  # the stream's order learns as well
    cfg = sae.cfg
    x = np.asarray(ds.train, np.float64)
    assert cfg.data_rms == pytest.approx(np.sqrt((x ** 2).mean()), rel=0.05)  # of the rows trained on (90%)


def test_held_out_rows_are_left_out_of_every_batch(folder, monkeypatch):
    """The rows train_sae holds out for early stopping never reach a training batch."""
    from mdlcodec.data import stream

    seen, held = [], []
    real_epoch, real_init = stream.ShuffleStream.epoch, stream.ShuffleStream.__init__

    def init(self, *a, exclude=None, **kw):
        held.append(exclude)
        real_init(self, *a, exclude=exclude, **kw)

    def epoch(self, e, with_ids=False):
        for ids, b in real_epoch(self, e, with_ids=True):
            seen.append(ids)
            yield b

    monkeypatch.setattr(stream.ShuffleStream, "__init__", init)
    monkeypatch.setattr(stream.ShuffleStream, "epoch", epoch)
    _, _, _, n_train = _train(folder)
    (h,) = held
    assert len(h) == round(0.1 * n_train)
    per_epoch = np.concatenate(seen).reshape(3, -1)
    for ids in per_epoch:  # each epoch: every training row at most once, the held-out never
        assert len(set(ids.tolist())) == len(ids) == (n_train - len(h)) // 64 * 64
        assert not set(ids.tolist()) & set(h.tolist())
