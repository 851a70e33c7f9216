"""mdlcodec.data: file formats, the split, MNIST, the toy model and its truth, bad input via the CLI."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import save_file

from mdlcodec.cli.main import cli
from mdlcodec.core.errors import DataError
from mdlcodec.data import (
    ToyConfig,
    check_finite,
    load_activations,
    load_dataset,
    make_toy,
    split_index,
)
from mdlcodec.data import dataset as dataset_module
from mdlcodec.data.mnist import read_idx_images


def _matrix(n=10, d=3, dtype=np.float32) -> np.ndarray:
    return np.arange(n * d, dtype=np.float64).reshape(n, d).astype(dtype) / 7


# --- files and the split ----------------------------------------------------------------------

def _write(fmt: str, path, x: np.ndarray, extra: bool) -> str:
    """Write x in format fmt (with a second 2-D array when extra); return the spec that names x."""
    other = np.ones((2, 2), np.float32)
    if fmt == "npy":
        np.save(path.with_suffix(".npy"), x)
        return str(path.with_suffix(".npy"))
    if fmt == "npz":
        np.savez(path.with_suffix(".npz"), acts=x, **({"other": other} if extra else {}))
        spec = str(path.with_suffix(".npz"))
    elif fmt == "safetensors":
        save_file({"acts": x, **({"other": other} if extra else {})}, str(path.with_suffix(".safetensors")))
        spec = str(path.with_suffix(".safetensors"))
    else:
        obj = {"acts": torch.from_numpy(x), **({"other": torch.from_numpy(other)} if extra else {})}
        torch.save(obj if extra else torch.from_numpy(x), path.with_suffix(".pt"))
        spec = str(path.with_suffix(".pt"))
    return spec + (":acts" if extra else "")


@pytest.mark.parametrize("fmt, extra", [("npy", False)] + [(f, e) for f in ("npz", "safetensors", "pt")
                                                          for e in (False, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_formats_round_trip_and_split(tmp_path, fmt, extra, dtype):
    x = _matrix(dtype=dtype)
    ds = load_dataset(_write(fmt, tmp_path / "a", x, extra))
    assert ds.train.dtype == np.float32 and ds.d == 3 and ds.truth is None and ds.image_shape is None
    np.testing.assert_array_equal(ds.train, x[:8].astype(np.float32))
    np.testing.assert_array_equal(ds.test, x[8:].astype(np.float32))


def test_several_arrays_without_key_is_refused(tmp_path):
    np.savez(tmp_path / "two.npz", a=_matrix(), b=_matrix())
    with pytest.raises(DataError, match="name one as"):
        load_dataset(str(tmp_path / "two.npz"))
    np.savez(tmp_path / "one2d.npz", acts=_matrix(), labels=np.arange(10))
    assert load_dataset(str(tmp_path / "one2d.npz")).d == 3  # the only 2-D array is chosen
    with pytest.raises(DataError, match="no array 'zz'"):
        load_dataset(str(tmp_path / "one2d.npz") + ":zz")


def test_npy_stays_memory_mapped(tmp_path):
    np.save(tmp_path / "h.npy", _matrix(dtype=np.float16))
    assert isinstance(load_activations(tmp_path / "h.npy"), np.memmap)  # not converted, not read
    np.save(tmp_path / "f.npy", _matrix())
    ds = load_dataset(str(tmp_path / "f.npy"))
    assert isinstance(ds.train, np.memmap) and isinstance(ds.test, np.memmap)


def test_split_index():
    assert [split_index(n, "x") for n in (2, 4, 5, 10, 20000)] == [1, 3, 4, 8, 16000]
    with pytest.raises(DataError, match="at least 2"):
        split_index(1, "x")


def test_check_finite_reads_chunkwise_and_names_the_row(tmp_path, monkeypatch):
    x = _matrix(n=100)
    x[73, 1] = np.inf
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(dataset_module, "CHUNK_BYTES", 64)  # a few rows per chunk
    with pytest.raises(DataError, match=r"contains Inf \(first at row 73, column 1\)"):
        check_finite(load_activations(tmp_path / "x.npy"), "x.npy")


# --- MNIST --------------------------------------------------------------------------------------

def _idx(images: np.ndarray) -> bytes:
    n, r, c = images.shape
    return np.array([0x803, n, r, c], dtype=">u4").tobytes() + images.astype(np.uint8).tobytes()


def test_real_mnist(mnist_dir):
    ds = load_dataset(f"mnist:{mnist_dir}")
    assert ds.train.shape == (8000, 784) and ds.test.shape == (2000, 784) and ds.image_shape == (28, 28)
    assert ds.train.dtype == np.float32 and ds.train.min() == 0 and ds.train.max() == 1
    raw = read_idx_images(mnist_dir / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(ds.test * 255, raw[8000:].reshape(2000, 784))


def test_idx_raw_and_gzip_and_full_folder(tmp_path):
    rng = np.random.default_rng(0)
    test_imgs, train_imgs = rng.integers(0, 256, (5, 4, 3)), rng.integers(0, 256, (7, 4, 3))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(test_imgs))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(train_imgs)))
    ds = load_dataset(f"mnist:{tmp_path}")
    assert ds.image_shape == (4, 3) and ds.train.shape == (7, 12) and ds.test.shape == (5, 12)
    np.testing.assert_allclose(ds.train, train_imgs.reshape(7, 12) / 255, rtol=1e-6)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(DataError, match="magic"):
        load_dataset(f"mnist:{tmp_path}")


# --- toy model ----------------------------------------------------------------------------------

def test_toy_default_is_deterministic_and_hits_l0():
    a, b = load_dataset("toy"), load_dataset("toy")
    assert a.train.shape == (16000, 32) and a.test.shape == (4000, 32) and a.truth.directions.shape == (64, 32)
    assert a.train.tobytes() == b.train.tobytes() and a.test.tobytes() == b.test.tobytes()
    assert a.truth.train_activity.indices.tobytes() == b.truth.train_activity.indices.tobytes()
    assert load_dataset("toy:seed=1").train.tobytes() != a.train.tobytes()
    assert abs(a.truth.probs.sum() - 3) < 1e-9
    assert abs(a.truth.train_activity.l0().mean() - 3) < 0.1
    np.testing.assert_allclose(np.linalg.norm(a.truth.directions, axis=1), 1, atol=1e-6)
    # the data is exactly the sum of the recorded active features
    act = a.truth.test_activity
    z = np.zeros((act.n, 64), np.float32)
    z[np.repeat(np.arange(act.n), act.l0()), act.indices] = act.values
    np.testing.assert_allclose(z @ a.truth.directions, a.test, atol=1e-5)
    assert act.values.min() >= 0.5 and act.values.max() <= 1.5


def test_toy_lm_preset():
    ds = load_dataset("toy:lm,n=2000")
    assert ds.d == 768 and ds.truth.directions.shape == (4096, 768)
    assert abs(ds.truth.train_activity.l0().mean() - 64) < 2


def _structured(**kw) -> tuple:
    cfg = ToyConfig(n_features=8, d=4, l0=2.0, alpha=0.7, hierarchy=2, correlated=1, rho=0.6, n=200_000, seed=3)
    ds = make_toy(ToyConfig(**{**cfg.__dict__, **kw}))
    return ds.truth, ds.truth.train_activity.to_dense()


def test_toy_hierarchy_and_correlation():
    t, bits = _structured()
    for child in np.flatnonzero(t.parents >= 0):
        parent = t.parents[child]
        assert not (bits[:, child] & ~bits[:, parent]).any()  # never without the parent
        assert abs(bits[:, child].mean() - t.probs[child]) < 0.01
    (a, b), = t.pairs
    assert abs(np.corrcoef(bits[:, a], bits[:, b])[0, 1] - 0.6) < 0.03
    np.testing.assert_allclose(bits.mean(axis=0), t.probs, atol=0.01)


@pytest.mark.parametrize("kw", [{}, {"hierarchy": 0, "correlated": 0}, {"rho": -0.1}])
def test_toy_true_entropy_matches_empirical_joint_entropy(kw):
    t, bits = _structured(**kw)
    _, counts = np.unique(np.packbits(bits, axis=1), axis=0, return_counts=True)
    p = counts / counts.sum()
    empirical = -(p * np.log2(p)).sum()  # plug-in entropy of the whole pattern (256 outcomes)
    assert abs(empirical - t.entropy_bits_per_sample()) < 0.02


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_describes_toy_and_files(tmp_path):
    r = CliRunner().invoke(cli, ["data", "toy", "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert (info["n_train"], info["n_test"], info["d"], info["toy"]["true_features"]) == (16000, 4000, 32, 64)
    assert info["toy"]["expected_l0"] == pytest.approx(3) and info["toy"]["true_entropy_bits_per_sample"] > 0
    x = _matrix()
    np.save(tmp_path / "x.npy", x)
    r = CliRunner().invoke(cli, ["data", str(tmp_path / "x.npy"), "--json"])
    s = json.loads(r.stdout)["train"]
    assert s["min"] == pytest.approx(x[:8].min()) and s["max"] == pytest.approx(x[:8].max())
    assert s["mean_sq_norm"] == pytest.approx((x[:8].astype(np.float64) ** 2).sum(1).mean())
    assert s["total_variance"] == pytest.approx(x[:8].astype(np.float64).var(0).sum())
    r = CliRunner().invoke(cli, ["data", "toy:n=100"])
    assert r.exit_code == 0 and "expected L0 3" in r.stdout


def _bad_inputs(tmp):
    nan = _matrix()
    nan[5, 0] = np.nan
    inf = _matrix()
    inf[9, 2] = -np.inf
    files = {"nan.npy": nan, "inf.npy": inf, "one_d.npy": np.zeros(5, np.float32),
             "three_d.npy": np.zeros((2, 2, 2), np.float32), "empty.npy": np.zeros((0, 4), np.float32),
             "no_cols.npy": np.zeros((4, 0), np.float32), "bool.npy": np.zeros((4, 4), bool),
             "one_row.npy": np.zeros((1, 4), np.float32)}
    for name, arr in files.items():
        np.save(tmp / name, arr)
    (tmp / "garbage.npy").write_bytes(b"not a numpy file")
    (tmp / "x.csv").write_text("1,2\n")
    np.savez(tmp / "nan.npz", a=nan)
    save_file({"a": np.zeros((3,), np.float32)}, str(tmp / "one_d.safetensors"))
    torch.save({"step": 3}, tmp / "notensor.pt")
    return {
        "missing file": (str(tmp / "missing.npy"), "no such file"),
        "NaN": (str(tmp / "nan.npy"), "contains NaN"), "Inf": (str(tmp / "inf.npy"), "contains Inf"),
        "NaN npz": (str(tmp / "nan.npz"), "contains NaN"),
        "1-D": (str(tmp / "one_d.npy"), "2-D"), "3-D": (str(tmp / "three_d.npy"), "2-D"),
        "1-D safetensors": (str(tmp / "one_d.safetensors"), "2-D"),
        "empty": (str(tmp / "empty.npy"), "empty"), "no columns": (str(tmp / "no_cols.npy"), "empty"),
        "one row": (str(tmp / "one_row.npy"), "at least 2"),
        "bool": (str(tmp / "bool.npy"), "dtype bool"), "corrupt": (str(tmp / "garbage.npy"), "cannot read"),
        "unknown extension": (str(tmp / "x.csv"), "unknown file type"),
        "pt without tensors": (str(tmp / "notensor.pt"), "without tensors"),
        "unknown spec": ("imagenet", "unknown dataset spec"),
        "unknown toy key": ("toy:widht=3", "unknown key 'widht'"),
        "bad toy value": ("toy:n=lots", "n='lots' is not an integer"),
        "impossible toy": ("toy:l0=1000", "l0=1000"),
        "mnist missing": (f"mnist:{tmp / 'nowhere'}", "no MNIST test images"),
    }


def test_cli_bad_input_is_one_error_line(tmp_path):
    for case, (spec, message) in _bad_inputs(tmp_path).items():
        r = CliRunner().invoke(cli, ["data", spec])
        assert r.exit_code == 1, (case, r.output)
        assert isinstance(r.exception, SystemExit), (case, r.exception)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (case, r.stderr)
        assert "Traceback" not in r.output
