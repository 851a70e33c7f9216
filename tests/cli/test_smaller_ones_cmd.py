"""Issue 29 §10, the smaller ones: tolerances that would name one kept file twice, two `measure -o DIR`
runs at once, an output name as long as the filesystem allows, and a dictionary_learning k beyond
its dictionary: each is one line (or works), none loses or hides anything."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli.helpers import one_line_error, run

TOY = "toy:n=3000,n_features=24,d=12,l0=2"  # the toy_model_dir fixture's data
ROOT = Path(__file__).resolve().parents[2]


def test_near_duplicate_tolerances_are_one_line(toy_model_dir, tmp_path):
    model, _ = toy_model_dir
    line = one_line_error(run("measure", model, TOY, "--max-fvu", "0.1,0.1000001", "-o", tmp_path / "out"),
                          "would name one file")
    assert "0.1000001" in line
    assert not (tmp_path / "out").exists()


def test_two_measure_runs_into_one_folder_one_succeeds_the_other_is_one_line(toy_model_dir, tmp_path):
    """Started together, both pass the up-front check that results.json is absent (before: both exited
    0 and one run's results were lost); now one holds OUT_DIR and the other says so, or finds the
    first's results there, in one line."""
    shared, _ = toy_model_dir
    models = []
    for name in ("a", "b"):  # -o adds tables to the SAE's archive: a copy each
        shutil.copytree(shared, tmp_path / name)
        models.append(tmp_path / name)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ps = [subprocess.Popen([sys.executable, "-m", "mdlcodec", "measure", str(m), TOY, "--max-fvu", "0.8,0.5", "-o",
                            str(out), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=ROOT) for m in models]
    done = [p.communicate(timeout=600) + (p.returncode,) for p in ps]
    codes = sorted(c for _, _, c in done)
    assert codes == [0, 1], [e[-300:] for _, e, _ in done]
    (winner,) = [i for i, (_, _, c) in enumerate(done) if c == 0]
    err = done[1 - winner][1].strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and ("another measure run" in err[0] or "exists" in err[0])
    import json

    assert json.loads((out / "results.json").read_text())["command"]["models"] == [str(models[winner])]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_an_output_name_as_long_as_the_filesystem_allows(toy_model_dir, tmp_path):
    """A 245-character output name (legal: NAME_MAX is 255) was refused because its temporary name,
    .NAME.PID.RANDOM.tmp.mdlc, was longer; the folder of a 250-character name too."""
    model, ds = toy_model_dir
    np.save(tmp_path / "x.npy", np.asarray(ds.test[:50], np.float32))
    long = tmp_path / ("x" * 240 + ".mdlc")
    assert len(long.name) == 245
    r = run("encode", tmp_path / "x.npy", "-m", model, "-o", long, "--embed-model")
    assert r.exit_code == 0, r.output
    r = run("decode", long, "-o", tmp_path / ("z" * 241 + ".npz"), "--latents")  # spill files derive their names
    assert r.exit_code == 0, r.output
    r = run("train", TOY, "--arch", "topk", "--width", 16, "--k", 2, "--epochs", 1, "-o", tmp_path / ("m" * 250))
    assert r.exit_code == 0, r.output
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [5, 245, 245, 250]


@pytest.mark.parametrize("where, k, words", [("trainer", 10**6, "trainer.k is 1000000"),
                                             ("state", 10**6, "k is 1000000, more than dict_size"),
                                             ("both", 7, "k is 7, and")])
def test_a_dictionary_learning_k_beyond_its_dictionary_is_one_line(tmp_path, where, k, words):
    import torch

    from tests.models import peer_helpers as ph

    folder = tmp_path / "peer"
    trainer = {"k": k} if where == "trainer" else {}
    state = {"k": torch.tensor(k, dtype=torch.int32)} if where in ("state", "both") else {}
    ph.write_dictionary_learning(folder, "BatchTopKSAE", trainer=trainer, state=state)
    line = one_line_error(run("import", folder, "-o", tmp_path / "out"), words)
    assert str(folder) in line
    assert not (tmp_path / "out").exists()
