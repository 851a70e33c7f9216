"""mdlcodec.models.io: bit-exact save/load, saving into an existing folder, one-line refusals of
damaged model folders."""

from __future__ import annotations

import json

import pytest
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.models import load_sae, save_sae
from tests.models.helpers import _sae, _x


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu"])
def test_save_load_round_trip_is_bit_exact(tmp_path, arch):
    sae = _sae(arch, threshold=0.123456789 if arch == "batchtopk" else None, input_scale=1.7)
    save_sae(sae, tmp_path / "m")
    back = load_sae(tmp_path / "m")
    assert back.cfg == sae.cfg
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(back, name), getattr(sae, name))
    x = _x()
    assert torch.equal(back.encode(x), sae.encode(x))
    assert torch.equal(back(x)[0], sae(x)[0])
    cfg = json.loads((tmp_path / "m" / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["d_sae"] == 20


def test_save_into_existing_dir_replaces_our_files_and_keeps_others(tmp_path):
    d = tmp_path / "m"
    save_sae(_sae(seed=0), d)
    (d / "notes.txt").write_text("keep me")
    save_sae(_sae(seed=5), d)
    assert (d / "notes.txt").read_text() == "keep me"
    assert torch.equal(load_sae(d).W_dec, _sae(seed=5).W_dec)
    assert sorted(p.name for p in d.iterdir()) == ["cfg.json", "notes.txt", "sae_weights.safetensors"]


def test_save_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelError, match="not a directory"):
        save_sae(_sae(), tmp_path / "f")


def _corrupt(d, what):
    if what == "missing dir":
        return d / "nope", "does not exist"
    if what == "no weights":
        (d / "sae_weights.safetensors").unlink()
        return d, "sae_weights.safetensors is missing"
    if what == "bad json":
        (d / "cfg.json").write_text("{not json")
        return d, "cannot read"
    if what == "bad arch":
        cfg = json.loads((d / "cfg.json").read_text())
        (d / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
        return d, "unknown architecture 'gated'"
    if what == "unknown field":
        cfg = json.loads((d / "cfg.json").read_text())
        (d / "cfg.json").write_text(json.dumps({**cfg, "colour": 3}))
        return d, "unknown field"
    if what == "wrong width":
        cfg = json.loads((d / "cfg.json").read_text())
        (d / "cfg.json").write_text(json.dumps({**cfg, "d_sae": 21}))
        return d, r"W_enc has shape \[12, 20\]"
    if what == "truncated weights":
        p = d / "sae_weights.safetensors"
        p.write_bytes(p.read_bytes()[:40])
        return d, "cannot read"
    if what == "string width":
        cfg = json.loads((d / "cfg.json").read_text())
        (d / "cfg.json").write_text(json.dumps({**cfg, "d_sae": "20"}))
        return d, "must be an integer"
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["missing dir", "no weights", "bad json", "bad arch", "unknown field",
                                  "wrong width", "truncated weights", "string width"])
def test_load_refuses_damaged_directories_with_one_line(tmp_path, what):
    save_sae(_sae(), tmp_path / "m")
    d, msg = _corrupt(tmp_path / "m", what)
    with pytest.raises(ModelError, match=msg) as e:
        load_sae(d)
    assert "\n" not in str(e.value)
