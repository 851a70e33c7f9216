"""encode / decode with --workers N (local processes) and --scheduler ADDRESS (a two-worker Dask
LocalCluster): the same bytes as a serial run; decode --rows; and the bad inputs of each, one line
and nothing written."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import sys
import time

import numpy as np
import pytest

from mdlcodec.codec import Codec, SparseCodes
from mdlcodec.data.shards import ShardWriter
from tests.cli.helpers import one_line_error, run

pytestmark = pytest.mark.usefixtures("one_thread")

FILE_ID = "a5" * 16


@pytest.fixture(scope="module")
def cluster():
    """A Dask LocalCluster of two one-thread worker processes, for this module."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def inputs(toy_model_dir, tmp_path_factory):
    """(model folder, .npy of 600 rows, shard folder of the same rows, folder, serial .mdlc in chunks of 64)."""
    model, ds = toy_model_dir
    root = tmp_path_factory.mktemp("parallel")
    x = np.asarray(ds.test, np.float32)
    np.save(root / "x.npy", x)
    (root / "shards").mkdir()
    w = ShardWriter(root / "shards", x.shape[1], "float32", 250)
    w.add(x)
    w.finish()
    r = run("encode", root / "x.npy", "-m", model, "-o", root / "serial.mdlc", "--chunk-size", 64, "--file-id", FILE_ID)
    assert r.exit_code == 0, r.output
    return model, root / "x.npy", root / "shards", root, root / "serial.mdlc"


def _encode(model, data, out, *extra):
    r = run("encode", data, "-m", model, "-o", out, "--chunk-size", 64, "--file-id", FILE_ID, *extra)
    assert r.exit_code == 0, r.output
    return out.read_bytes()


def test_workers_and_a_dask_cluster_write_the_serial_bytes_and_decode_the_same(inputs, cluster, tmp_path):
    model, npy, shards, _, serial = inputs
    want = serial.read_bytes()
    assert _encode(model, npy, tmp_path / "w.mdlc", "--workers", 2) == want
    np.savez(tmp_path / "x.npz", acts=np.load(npy))  # held in memory: its rows are sent to the workers
    assert _encode(model, f"{tmp_path / 'x.npz'}:acts", tmp_path / "z.mdlc", "--workers", 2) == want
    assert _encode(model, shards, tmp_path / "d.mdlc", "--scheduler", cluster.scheduler_address) == want

    full = Codec.load(model).decode(want)
    assert run("decode", serial, "-m", model, "-o", tmp_path / "d.npy", "--scheduler", cluster.scheduler_address).exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), full)
    assert run("decode", serial, "-m", model, "-o", tmp_path / "w.npy", "--rows", "100:333", "--workers", 2).exit_code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), full[100:333])


def test_a_self_contained_file_decodes_on_the_cluster(inputs, cluster, tmp_path):
    model, npy, _, _, _ = inputs
    data = _encode(model, npy, tmp_path / "e.mdlc", "--embed-model")
    r = run("decode", tmp_path / "e.mdlc", "-o", tmp_path / "e.npz", "--latents", "--rows", "500:",
            "--scheduler", cluster.scheduler_address)
    assert r.exit_code == 0, r.output
    z = np.load(tmp_path / "e.npz")
    want = Codec.load(model).decode_latents(data).to_dense()[500:]
    assert tuple(z["shape"]) == want.shape
    np.testing.assert_array_equal(SparseCodes(z["indptr"], z["indices"], z["bins"], want.shape[1]).to_dense(), want)


def test_rows_of_the_cli_equal_the_full_decode(inputs, tmp_path):
    model, _, _, _, serial = inputs
    assert run("decode", serial, "-m", model, "-o", tmp_path / "full.npz", "--latents").exit_code == 0
    r = run("decode", serial, "-m", model, "-o", tmp_path / "part.npz", "--latents", "--rows", "63:65", "--json")
    assert r.exit_code == 0 and '"samples": 2' in r.output
    full, part = np.load(tmp_path / "full.npz"), np.load(tmp_path / "part.npz")
    a, b = full["indptr"][63], full["indptr"][65]
    np.testing.assert_array_equal(part["indptr"], full["indptr"][63:66] - a)
    for k in ("indices", "bins", "data"):
        np.testing.assert_array_equal(part[k], full[k][a:b])


def _nothing_written(folder, *names):
    left = sorted(p.name for p in folder.iterdir())
    assert not any(n in left for n in names) and not any(n.endswith(".tmp") or ".tmp." in n for n in left), left


@pytest.mark.parametrize("rows, needle", [("0:601", "out of range: the file holds 600 rows"),
                                          ("600:", "select no rows"), ("5:5", "select no rows"),
                                          ("", "is not A:B"), ("-3:5", "is not A:B"), ("1:2:3", "is not A:B"),
                                          ("a:b", "is not A:B")])
def test_bad_rows_are_one_line_and_write_nothing(inputs, tmp_path, rows, needle):
    model, _, _, _, serial = inputs
    one_line_error(run("decode", serial, "-m", model, "-o", tmp_path / "o.npy", "--rows", rows), needle)
    _nothing_written(tmp_path, "o.npy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_that_does_not_answer_is_one_line_within_the_timeout(inputs, tmp_path):
    model, npy, _, _, serial = inputs
    address = f"tcp://127.0.0.1:{_free_port()}"
    t = time.perf_counter()
    one_line_error(run("encode", npy, "-m", model, "-o", tmp_path / "o.mdlc", "--scheduler", address,
                       "--scheduler-timeout", 1), f"the Dask scheduler at {address} did not answer within 1 s")
    one_line_error(run("decode", serial, "-m", model, "-o", tmp_path / "o.npy", "--scheduler", address,
                       "--scheduler-timeout", 1), "did not answer within 1 s")
    assert time.perf_counter() - t < 20
    _nothing_written(tmp_path, "o.mdlc", "o.npy")


def test_without_dask_scheduler_names_the_extra(inputs, tmp_path, monkeypatch):
    model, npy, _, _, _ = inputs
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import dask.distributed fails
    one_line_error(run("encode", npy, "-m", model, "-o", tmp_path / "o.mdlc", "--scheduler", "tcp://x:8786"),
                   "pip install 'mdlcodec[dask]'")
    _nothing_written(tmp_path, "o.mdlc")


def test_workers_and_scheduler_together_are_refused(inputs, tmp_path):
    model, npy, _, _, _ = inputs
    one_line_error(run("encode", npy, "-m", model, "-o", tmp_path / "o.mdlc", "--workers", 2, "--scheduler",
                       "tcp://x:8786"), "not both")


class _DiesInAWorker:
    """The rows of a .npy, except that a worker process reading rows from 256 on dies (os._exit)."""

    def __init__(self, x):
        self.x, self.shape, self.dtype, self.ndim = x, x.shape, x.dtype, 2

    def __len__(self):
        return len(self.x)

    def __getitem__(self, key):
        if multiprocessing.parent_process() is not None and isinstance(key, slice) and (key.start or 0) >= 256:
            os._exit(3)
        return self.x[key]


def dies_in_a_worker(spec: str, split: str = "all"):
    """load_rows for the dead-worker test: sent to the workers by name."""
    from mdlcodec.data.spec import load_rows

    return _DiesInAWorker(load_rows(spec, split))


def test_a_worker_that_dies_fails_the_run_in_one_line_and_writes_nothing(inputs, tmp_path, monkeypatch):
    import mdlcodec.data

    model, npy, _, _, _ = inputs
    monkeypatch.setattr(mdlcodec.data, "load_rows", dies_in_a_worker)
    one_line_error(run("encode", npy, "-m", model, "-o", tmp_path / "o.mdlc", "--chunk-size", 64, "--workers", 2),
                   "a worker process died while coding chunk")
    _nothing_written(tmp_path, "o.mdlc")


def test_a_chunk_a_worker_refuses_is_one_line_naming_the_row(inputs, tmp_path):
    model, npy, _, _, _ = inputs
    x = np.load(npy)
    x[300, 4] = np.nan
    np.save(tmp_path / "nan.npy", x)
    one_line_error(run("encode", tmp_path / "nan.npy", "-m", model, "-o", tmp_path / "o.mdlc", "--chunk-size", 64,
                       "--workers", 2), "contains NaN (first at row 300, column 4)")
    _nothing_written(tmp_path, "o.mdlc")


def test_a_shard_folder_whose_shards_disagree_is_one_line(inputs, tmp_path):
    model, _, shards, _, _ = inputs
    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    np.save(bad / "shard-00001.npy", np.zeros((250, 11), np.float32))
    for extra in ([], ["--workers", 2]):
        one_line_error(run("encode", bad, "-m", model, "-o", tmp_path / "o.mdlc", *extra),
                       "shard shard-00001.npy has shape (250, 11)")
    np.save(bad / "shard-00001.npy", np.zeros((250, 12), np.float64))
    one_line_error(run("encode", bad, "-m", model, "-o", tmp_path / "o.mdlc"), "shard shard-00001.npy has dtype float64")
    _nothing_written(tmp_path, "o.mdlc")
