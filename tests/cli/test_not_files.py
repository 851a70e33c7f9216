"""Issue 19 §7 and §8 through the command line: a FIFO where a model folder, a peer's folder, a shard
folder or an activation file should be a regular file is one line at once (it used to block
`mdlcodec encode` for ever), and hostile JSON in a model's mdlcodec_sae.json (or an earlier version's
cfg.json), a peer's config.json or a shard folder's manifest.json is one line, never a traceback. Every command runs in a thread with a time
limit (tests.core.helpers.within), so that a regression fails instead of hanging the suite."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest

from mdlcodec.core.errors import ModelError
from mdlcodec.core.jsonio import MAX_BYTES
from mdlcodec.models.io import CFG_FILE, OLD_CFG_FILE, OLD_WEIGHTS_FILE, WEIGHTS_FILE
from tests.cli.helpers import one_line_error, run
from tests.core.helpers import within
from tests.data.test_shards import write_shards
from tests.models import peer_helpers as ph

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32", reason="no FIFOs here")

LIMIT = 30  # seconds: each command below takes well under one


def _fifo(path):
    """Replace the file at path by a FIFO; returns path."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def _model(toy_model_dir, tmp_path, old: bool = False):
    """A copy of the toy model; old: its files under the names of versions before issue 20."""
    model = tmp_path / "model"
    shutil.copytree(toy_model_dir[0], model)
    if old:
        (model / CFG_FILE).rename(model / OLD_CFG_FILE)
        (model / WEIGHTS_FILE).rename(model / OLD_WEIGHTS_FILE)
    return model


def _acts(tmp_path):
    src = tmp_path / "x.npy"
    np.save(src, np.zeros((50, 12), np.float32))
    return src


def _shards(tmp_path):
    folder = tmp_path / "acts"
    write_shards(folder, np.random.default_rng(0).standard_normal((23, 4)).astype(np.float32), 5)
    return folder


def _cli(*args, fifos=()):
    return within(LIMIT, lambda: run(*args), fifos)


@pytest.mark.parametrize("name", ["codec.safetensors", WEIGHTS_FILE, CFG_FILE, OLD_WEIGHTS_FILE, OLD_CFG_FILE])
def test_a_fifo_in_a_model_folder_is_one_line_at_encode(toy_model_dir, tmp_path, name):
    model = _model(toy_model_dir, tmp_path, old=name in (OLD_CFG_FILE, OLD_WEIGHTS_FILE))
    fifo = _fifo(model / name)
    r = _cli("encode", _acts(tmp_path), "-m", model, "-o", tmp_path / "x.mdlc", fifos=[fifo])
    line = one_line_error(r, f"{fifo} is a FIFO (named pipe), not a regular file")
    assert line == f"error: {fifo} is a FIFO (named pipe), not a regular file"
    assert not (tmp_path / "x.mdlc").exists()


def test_a_fifo_in_the_tables_archive_is_refused(toy_model_dir, tmp_path):
    from mdlcodec.codec import Codec

    model = _model(toy_model_dir, tmp_path)
    codec = Codec.load(model)
    fp = "0" * 32
    fifo = _fifo(model / "tables" / f"{fp}.safetensors")
    with pytest.raises(ModelError, match="is a FIFO"):
        within(LIMIT, lambda: codec.archived(fp), [fifo])
    with pytest.raises(ModelError, match="is a FIFO"):
        within(LIMIT, lambda: Codec.load(model, tables=fp), [fifo])


def test_a_fifo_as_the_activation_file_is_one_line(toy_model_dir, tmp_path):
    fifo = _fifo(tmp_path / "x.npy")
    r = _cli("encode", fifo, "-m", toy_model_dir[0], "-o", tmp_path / "x.mdlc", fifos=[fifo])
    one_line_error(r, f"{fifo} is a FIFO")


@pytest.mark.parametrize("name", ["manifest.json", "shard-00001.npy"])
def test_a_fifo_in_a_shard_folder_is_one_line(tmp_path, name):
    folder = _shards(tmp_path)
    fifo = _fifo(folder / name)
    line = one_line_error(_cli("data", folder, fifos=[fifo]), "is a FIFO (named pipe), not a regular file")
    assert (name if name == "manifest.json" else f"shard {name}") in line and str(folder) in line


def test_a_shard_linked_from_elsewhere_is_followed_and_must_be_a_regular_file(tmp_path):
    folder = _shards(tmp_path)
    elsewhere = tmp_path / "kept-elsewhere"
    elsewhere.mkdir()
    shutil.move(folder / "shard-00002.npy", elsewhere / "shard-00002.npy")
    (folder / "shard-00002.npy").symlink_to(elsewhere / "shard-00002.npy")
    r = _cli("data", folder, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_train"] + json.loads(r.stdout)["n_test"] == 23
    fifo = _fifo(elsewhere / "shard-00002.npy")
    line = one_line_error(_cli("data", folder, fifos=[fifo]), "shard shard-00002.npy is a FIFO")
    assert str(folder) in line


PEERS = {  # a file of a peer's folder -> how to write the folder
    "config.json": lambda d: ph.write_dictionary_learning(d, "AutoEncoder"),
    "ae.pt": lambda d: ph.write_dictionary_learning(d, "AutoEncoder"),
    "cfg.json": lambda d: ph.write_saelens(d),
    "sae_weights.safetensors": lambda d: ph.write_saelens(d),
}


@pytest.mark.parametrize("name", list(PEERS))
def test_a_fifo_in_a_peer_folder_is_one_line_at_import(tmp_path, name):
    peer = PEERS[name](tmp_path / "peer")
    fifo = _fifo(peer / name)
    r = _cli("import", peer, "-o", tmp_path / "out", fifos=[fifo])
    one_line_error(r, f"{fifo} is a FIFO (named pipe), not a regular file")
    assert not (tmp_path / "out").exists()


def _inject(path, value: bytes) -> None:
    """Put ``"extra": value`` first in the JSON object of path (as bytes, however hostile)."""
    path.write_bytes(b'{"extra": ' + value + b", " + path.read_bytes().lstrip()[1:])


def _duplicate(path) -> None:
    first = next(iter(json.loads(path.read_text())))
    path.write_bytes(b"{" + json.dumps(first).encode() + b": null, " + path.read_bytes().lstrip()[1:])


def _oversize(path) -> None:
    with open(path, "r+b") as f:  # sparse: nothing past the JSON is written
        f.truncate(MAX_BYTES + 1)


ATTACKS = {  # what -> (damage a JSON file, words of the error)
    "5,000-digit integer": (lambda p: _inject(p, b"7" * 5000), "an integer of 5000 digits"),
    "100,000-deep nesting": (lambda p: _inject(p, b"[" * 100_000 + b"]" * 100_000), "levels deep, more than 64"),
    "NaN": (lambda p: _inject(p, b"NaN"), "NaN is not a JSON number"),
    "duplicate key": (_duplicate, "appears twice in one object"),
    "oversized file": (_oversize, f"{MAX_BYTES + 1} bytes of JSON, more than the limit"),
    "bad UTF-8": (lambda p: _inject(p, b'"\xc3\x28"'), "not UTF-8"),
}


def _json_case(kind, tmp_path, toy_model_dir):
    """(the JSON file to damage, the command that reads it) for a model, a peer and a shard folder."""
    if kind in (CFG_FILE, OLD_CFG_FILE):
        model = _model(toy_model_dir, tmp_path, old=kind == OLD_CFG_FILE)
        return model / kind, ("encode", _acts(tmp_path), "-m", model, "-o", tmp_path / "x.mdlc")
    if kind == "config.json":
        peer = ph.write_dictionary_learning(tmp_path / "peer", "AutoEncoder")
        return peer / "config.json", ("import", peer, "-o", tmp_path / "out")
    folder = _shards(tmp_path)
    return folder / "manifest.json", ("data", folder)


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("kind", [CFG_FILE, OLD_CFG_FILE, "config.json", "manifest.json"])
def test_hostile_json_is_one_line_naming_the_file(toy_model_dir, tmp_path, kind, attack):
    path, command = _json_case(kind, tmp_path, toy_model_dir)
    damage, words = ATTACKS[attack]
    damage(path)
    line = one_line_error(_cli(*command), words)
    assert f"cannot read {path}: " in line, line
    assert not (tmp_path / "x.mdlc").exists() and not (tmp_path / "out").exists()


def test_a_fifo_as_an_mnist_file_is_one_line(tmp_path):
    from mdlcodec.core.errors import DataError
    from mdlcodec.data.mnist import read_idx_images

    os.mkfifo(tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(DataError, match="FIFO"):
        read_idx_images(tmp_path / "t10k-images-idx3-ubyte")
