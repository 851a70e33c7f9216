"""No command replaces a file it reads, with or without --force (issue 19 §6): the input of encode
whatever split it reads (a .npy, an .npz:KEY), the model folder encode and decode read, and
hierarchy's inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mdlcodec.models.io import CFG_FILE, WEIGHTS_FILE
from tests.cli.helpers import one_line_error, run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def files(toy_model_dir, tmp_path):
    import shutil

    model, ds = toy_model_dir
    mine = tmp_path / "model"
    shutil.copytree(model, mine)  # a private copy: a regression would destroy it
    x = np.asarray(ds.test, np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", acts=x)
    r = run("encode", tmp_path / "x.npy", "-m", mine, "-o", tmp_path / "x.mdlc", "--embed-model")
    assert r.exit_code == 0, r.output
    return mine, tmp_path


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("split", ["all", "test", "train"])
def test_encode_never_replaces_its_input(files, split, force):
    model, root = files
    for data, out in ((root / "x.npy", root / "x.npy"), (f"{root / 'x.npz'}:acts", root / "x.npz")):
        before = out.read_bytes()
        one_line_error(run("encode", data, "-m", model, "-o", out, "--split", split, *force), "refusing")
        assert out.read_bytes() == before


@pytest.mark.parametrize("name", [WEIGHTS_FILE, "codec.safetensors", CFG_FILE])
def test_encode_and_decode_never_replace_the_model_they_read(files, name):
    model, root = files
    before = _snapshot(model)
    one_line_error(run("encode", root / "x.npy", "-m", model, "-o", model / name, "--force"), "refusing")
    one_line_error(run("decode", root / "x.mdlc", "-m", model, "-o", model / name, "--force"), "refusing")
    assert _snapshot(model) == before


def test_decode_never_replaces_its_source(files):
    model, root = files
    before = (root / "x.mdlc").read_bytes()
    one_line_error(run("decode", root / "x.mdlc", "-o", root / "x.mdlc", "--force"), "refusing")
    assert (root / "x.mdlc").read_bytes() == before


def test_a_new_file_in_the_model_folder_is_allowed(files):
    model, root = files
    r = run("encode", root / "x.npy", "-m", model, "-o", model / "x.mdlc")
    assert r.exit_code == 0, r.output


def test_hierarchy_never_replaces_its_inputs(files):
    model, root = files
    before = (root / "x.npy").read_bytes()
    one_line_error(run("hierarchy", model, root / "x.npy", "-o", root / "x.npy"), "refusing")
    one_line_error(run("hierarchy", model, root / "x.npy", "-o", model / CFG_FILE), "refusing")
    assert (root / "x.npy").read_bytes() == before
