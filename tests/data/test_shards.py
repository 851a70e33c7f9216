"""Shard folders: the lazy row view, the manifest and shard checks, and a shard folder as a dataset spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdlcodec.core.atomic import atomic_folder
from mdlcodec.core.errors import DataError, MdlcodecError
from mdlcodec.data import check_finite, load_dataset, load_rows
from mdlcodec.data.dataset import array_stats, split_index
from mdlcodec.data.shards import MANIFEST, ShardedRows, ShardWriter, open_shards, read_manifest


def write_shards(folder, x: np.ndarray, shard_tokens: int, dtype: str = "float32", **fields):
    folder.mkdir(parents=True, exist_ok=True)
    w = ShardWriter(folder, x.shape[1], dtype, shard_tokens)
    for s in range(0, len(x), 3):  # rows arrive in pieces that straddle shard boundaries
        w.add(x[s:s + 3])
    return w.finish(**fields)


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((23, 4)).astype(np.float32)


@pytest.fixture
def folder(tmp_path, x):
    write_shards(tmp_path / "acts", x, 5, model={"name": "m"}, layer=2, hook_point="hidden_states[2]")
    return tmp_path / "acts"


def test_writer_fixed_size_shards_and_manifest(folder, x):
    m = read_manifest(folder)
    assert [s["rows"] for s in m["shards"]] == [5, 5, 5, 5, 3]
    assert [s["file"] for s in m["shards"]] == [f"shard-0000{i}.npy" for i in range(5)]
    assert m["total_tokens"] == 23 and m["d"] == 4 and m["dtype"] == "float32" and m["shard_tokens"] == 5
    assert m["layer"] == 2 and m["model"] == {"name": "m"}
    for i, s in enumerate(m["shards"]):
        np.testing.assert_array_equal(np.load(folder / s["file"]), x[5 * i:5 * i + s["rows"]])


def test_view_indexes_like_an_array(folder, x):
    v = open_shards(folder)
    assert isinstance(v, ShardedRows) and v.shape == (23, 4) and len(v) == 23 and v.dtype == np.float32 and v.ndim == 2
    for key in (slice(None), slice(3, 12), slice(4, 6), slice(5, 10), slice(20, 40), slice(-7, -1), slice(1, 20, 4),
                slice(9, 2), 0, 7, -1, [22, 0, 5, 5], np.array([3, 17]), (slice(2, 9), 1), (4, slice(1, 3))):
        np.testing.assert_array_equal(v[key], x[key], err_msg=str(key))
    mask = np.zeros(23, bool)
    mask[[1, 6, 22]] = True
    np.testing.assert_array_equal(v[mask], x[mask])
    np.testing.assert_array_equal(np.asarray(v), x)
    np.testing.assert_array_equal(np.asarray(v[2:15]), x[2:15])
    np.testing.assert_array_equal(np.array(list(v)), x)
    with pytest.raises(IndexError):
        v[23]


def test_sub_views_are_lazy_and_compose(folder, x):
    v = open_shards(folder)
    w = v.rows(4, 19)
    assert isinstance(w, ShardedRows) and w.shape == (15, 4)
    np.testing.assert_array_equal(w[:], x[4:19])
    np.testing.assert_array_equal(w.rows(3, 9)[1:4], x[8:11])
    np.testing.assert_array_equal(np.asarray(w, dtype=np.float64), x[4:19].astype(np.float64))
    assert v.rows(10, 10).shape == (0, 4)


def test_reads_touch_only_the_shards_they_need(folder):
    v = open_shards(folder)
    v[6:9]
    assert set(v._maps) == {1}
    v[9:11]
    assert set(v._maps) == {1, 2}


def test_float16_shards_read_as_float32_dataset(tmp_path, x):
    write_shards(tmp_path / "h", x, 7, dtype="float16")
    assert open_shards(tmp_path / "h").dtype == np.float16
    ds = load_dataset(str(tmp_path / "h"))
    assert ds.train.dtype == np.float32
    np.testing.assert_array_equal(ds.train[:], x[:split_index(23, "x")].astype(np.float16).astype(np.float32))


def test_dataset_spec_split_and_checks(folder, x):
    ds = load_dataset(str(folder))
    n_train = 23 - 23 // 5
    assert isinstance(ds.train, ShardedRows) and ds.train.shape == (n_train, 4) and ds.test.shape == (23 - n_train, 4)
    np.testing.assert_array_equal(ds.train[:], x[:n_train])
    np.testing.assert_array_equal(ds.test[:], x[n_train:])
    assert "5 shards" in ds.name and ds.d == 4
    stats = array_stats(ds.train)
    assert stats["max"] == pytest.approx(float(x[:n_train].max()))
    assert stats["mean_sq_norm"] == pytest.approx(float((x[:n_train].astype(np.float64) ** 2).sum(1).mean()))
    check_finite(ds.test, "test")
    all_rows = load_rows(str(folder))
    assert isinstance(all_rows, ShardedRows) and all_rows.shape == (23, 4)
    np.testing.assert_array_equal(load_rows(str(folder), "test")[:], x[n_train:])


def test_describe_names_the_shards(folder):
    from mdlcodec.data import describe

    info = describe(load_dataset(str(folder)))
    assert info["shards"]["count"] == 5 and info["shards"]["layer"] == 2 and info["n_train"] + info["n_test"] == 23


def test_nan_in_a_later_shard_names_its_row(tmp_path, x):
    y = x.copy()
    y[17, 2] = np.nan
    write_shards(tmp_path / "n", y, 5)
    with pytest.raises(DataError, match="NaN .*row 17, column 2"):
        load_dataset(str(tmp_path / "n"))


def _manifest(folder):
    return json.loads((folder / MANIFEST).read_text())


def _rewrite(folder, m):
    (folder / MANIFEST).write_text(json.dumps(m))


@pytest.mark.parametrize("damage, needle", [
    (lambda f: (f / "shard-00002.npy").unlink(), "shard shard-00002.npy is missing"),
    (lambda f: (f / "shard-00001.npy").write_bytes((f / "shard-00001.npy").read_bytes()[:-9]),
     "shard shard-00001.npy is truncated"),
    (lambda f: (f / "shard-00001.npy").write_bytes(b"not a numpy file"), "shard shard-00001.npy is not a readable"),
    (lambda f: np.save(f / "shard-00003.npy", np.zeros((5, 3), np.float32)), "shard shard-00003.npy has shape (5, 3)"),
    (lambda f: np.save(f / "shard-00004.npy", np.zeros((4, 4), np.float32)), "shard shard-00004.npy has 4 rows"),
    (lambda f: np.save(f / "shard-00000.npy", np.zeros((5, 4), np.float64)), "shard shard-00000.npy has dtype float64"),
    (lambda f: (f / MANIFEST).unlink(), "no manifest.json"),
    (lambda f: (f / MANIFEST).write_text("{"), "not valid JSON"),
    (lambda f: _rewrite(f, {**_manifest(f), "d": 5}), "shard shard-00000.npy has shape (5, 4)"),
    (lambda f: _rewrite(f, {**_manifest(f), "total_tokens": 24}), "total_tokens 24"),
    (lambda f: _rewrite(f, {**_manifest(f), "dtype": "int8"}), "dtype is 'int8'"),
    (lambda f: _rewrite(f, {**_manifest(f), "shards": []}), "lists no shards"),
    (lambda f: _rewrite(f, {**_manifest(f), "shards": [{"file": "../x.npy", "rows": 23}]}), "no plain file name"),
])
def test_bad_shard_folder_is_one_line_naming_the_fault(folder, damage, needle):
    damage(folder)
    for load in (lambda: load_dataset(str(folder)), lambda: load_rows(str(folder)), lambda: open_shards(folder)):
        with pytest.raises(DataError) as e:
            load()
        assert needle in str(e.value) and "\n" not in str(e.value) and str(folder) in str(e.value)


def test_float16_overflow_is_refused(tmp_path):
    w = ShardWriter(tmp_path, 2, "float16", 4)
    with pytest.raises(DataError, match="overflow float16"):
        w.add(np.array([[1e6, 0.0]], np.float32))


def test_atomic_folder_builds_beside_and_replaces_only_when_told(tmp_path):
    dst = tmp_path / "out"
    with atomic_folder(dst) as tmp:
        assert tmp.parent == tmp_path and tmp != dst
        (tmp / "a").write_text("1")
    assert (dst / "a").read_text() == "1"
    with pytest.raises(MdlcodecError, match="exists"), atomic_folder(dst):
        pass
    with pytest.raises(RuntimeError), atomic_folder(dst, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (dst / "a").exists()  # nothing left behind
    with atomic_folder(dst, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in dst.iterdir()) == ["b"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (dst / "text.txt").write_text("input")
    with pytest.raises(MdlcodecError, match="holds the input"):
        with atomic_folder(dst, overwrite=True, inputs=(dst / "text.txt",)):
            pass
