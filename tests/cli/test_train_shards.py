"""`mdlcodec train` and `mdlcodec select` on a shard folder: the training split is streamed (never read
whole), the same seed gives the same weights, and --shuffle-buffer reaches the training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mdlcodec.data import load_dataset
from mdlcodec.data.shards import ShardedRows
from mdlcodec.models import load_sae
from tests.cli.helpers import one_line_error, run
from tests.data.test_shards import write_shards

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    ds = load_dataset("toy:n_features=8,d=8,l0=1,alpha=0,n=1000")
    d = tmp_path_factory.mktemp("acts") / "s"
    write_shards(d, np.concatenate([ds.train, ds.test]), 64)
    return d


@pytest.fixture
def whole_reads(monkeypatch):
    """(start, stop) of every ShardedRows view read whole (np.asarray) during the test."""
    reads, real = [], ShardedRows.__array__

    def record(self, dtype=None, copy=None):
        reads.append((self.start, self.stop))
        return real(self, dtype, copy)

    monkeypatch.setattr(ShardedRows, "__array__", record)
    return reads


def test_train_streams_a_shard_folder_and_a_seed_fixes_the_weights(folder, tmp_path, whole_reads):
    args = (folder, "--width", "16", "--k", "2", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--json",
            "--shuffle-buffer", "100")
    r1, r2 = run("train", *args, "-o", tmp_path / "a"), run("train", *args, "-o", tmp_path / "b")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    report = json.loads(r1.stdout)
    assert report["epochs_run"] == 2 and report["codec"]["step"] > 0
    a, b = load_sae(tmp_path / "a").state_dict(), load_sae(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (0, 800) not in whole_reads  # the training split (rows 0:800 of 1,000) is never read whole
    r3 = run("train", *args[:-1], "400", "-o", tmp_path / "c")
    assert r3.exit_code == 0, r3.output
    c = load_sae(tmp_path / "c").state_dict()
    assert not torch.equal(a["W_dec"], c["W_dec"])  # the buffer size reaches the training


def test_train_refuses_a_zero_shuffle_buffer(folder, tmp_path):
    r = run("train", folder, "--width", "16", "--k", "2", "--shuffle-buffer", "0", "-o", tmp_path / "m")
    assert r.exit_code != 0 and "--shuffle-buffer" in r.output


def test_train_unknown_device_is_one_line(folder, tmp_path):
    one_line_error(run("train", folder, "--width", "16", "--k", "2", "--device", "tpu", "-o", tmp_path / "m"), "tpu")


def test_select_streams_a_shard_folder(folder, tmp_path, monkeypatch):
    """Every SAE of the sweep trains from the stream (the codec's fit and measure read the splits in chunks
    of 4,096 rows: here each split is one chunk)."""
    from mdlcodec.data import stream

    streams, real = [], stream.ShuffleStream.epoch
    monkeypatch.setattr(stream.ShuffleStream, "epoch", lambda self, *a, **kw: streams.append(self) or real(self, *a, **kw))
    out = tmp_path / "run"
    r = run("select", folder, "--tol", "0.05", "--widths", "8", "--epochs", "3", "--batch-size", "32",
            "--shuffle-buffer", "128", "--device", "cpu", "--no-pca", "--json", "-o", out)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["train_config"]["shuffle_buffer"] == 128
    assert streams and {s.buffer_rows for s in streams} == {128}
    assert len({id(s) for s in streams}) == res["timing"]["sae_trained"]
