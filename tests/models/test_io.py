"""mdlcodec.models.io: bit-exact save/load, saving into an existing folder, one-line refusals of
damaged model folders; mdlcodec's own file names, and folders under the names of the versions
before issue 20 (SAELens' cfg.json + sae_weights.safetensors) still loading and replaced by a save."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.models import load_sae, save_sae
from mdlcodec.models.io import CFG_FILE, OLD_CFG_FILE, OLD_WEIGHTS_FILE, WEIGHTS_FILE, holds_sae, model_files
from mdlcodec.models.peers import detect, export_saelens
from mdlcodec.workflow.trained_codec import check_model_output
from tests.models.helpers import _sae, _x


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def _to_old_layout(d: Path) -> Path:
    """Folder d (saved by save_sae) as versions before issue 20 wrote it: the same files under
    SAELens' names."""
    (d / CFG_FILE).rename(d / OLD_CFG_FILE)
    (d / WEIGHTS_FILE).rename(d / OLD_WEIGHTS_FILE)
    return d


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
    cfg = json.loads((tmp_path / "m" / CFG_FILE).read_text())
    assert cfg["architecture"] == arch and cfg["d_sae"] == 20


def test_save_into_existing_dir_replaces_our_files_and_keeps_others(tmp_path):
    d = tmp_path / "m"
    save_sae(_sae(seed=0), d)
    (d / "notes.txt").write_text("keep me")
    save_sae(_sae(seed=5), d)
    assert (d / "notes.txt").read_text() == "keep me"
    assert torch.equal(load_sae(d).W_dec, _sae(seed=5).W_dec)
    assert _names(d) == sorted([CFG_FILE, "notes.txt", WEIGHTS_FILE])


def test_save_refuses_a_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelError, match="not a directory"):
        save_sae(_sae(), tmp_path / "f")


def _corrupt(d, what):
    cfg_path, w_path = model_files(d)
    if what == "missing dir":
        return d / "nope", "does not exist"
    if what == "no weights":
        w_path.unlink()
        return d, f"{w_path.name} is missing"
    if what == "no config":
        cfg_path.unlink()
        return d, f"{cfg_path.name} is missing"
    if what == "bad json":
        cfg_path.write_text("{not json")
        return d, f"cannot read .*{cfg_path.name}"
    if what == "bad arch":
        cfg = json.loads(cfg_path.read_text())
        cfg_path.write_text(json.dumps({**cfg, "architecture": "gated"}))
        return d, "unknown architecture 'gated'"
    if what == "unknown field":
        cfg = json.loads(cfg_path.read_text())
        cfg_path.write_text(json.dumps({**cfg, "colour": 3}))
        return d, "unknown field"
    if what == "wrong width":
        cfg = json.loads(cfg_path.read_text())
        cfg_path.write_text(json.dumps({**cfg, "d_sae": 21}))
        return d, rf"{w_path.name}: W_enc has shape \[12, 20\], {cfg_path.name} implies \[12, 21\]"
    if what == "truncated weights":
        w_path.write_bytes(w_path.read_bytes()[:40])
        return d, f"cannot read .*{w_path.name}"
    if what == "string width":
        cfg = json.loads(cfg_path.read_text())
        cfg_path.write_text(json.dumps({**cfg, "d_sae": "20"}))
        return d, "must be an integer"
    raise AssertionError(what)


@pytest.mark.parametrize("layout", ["new", "old"])
@pytest.mark.parametrize("what", ["missing dir", "no weights", "no config", "bad json", "bad arch", "unknown field",
                                  "wrong width", "truncated weights", "string width"])
def test_load_refuses_damaged_directories_with_one_line(tmp_path, what, layout):
    save_sae(_sae(), tmp_path / "m")
    if layout == "old":
        _to_old_layout(tmp_path / "m")
    d, msg = _corrupt(tmp_path / "m", what)
    if layout == "old" and what == "no config":  # a lone sae_weights.safetensors: a SAELens folder, as before
        msg = "holds a saelens SAE, not an mdlcodec model"
    with pytest.raises(ModelError, match=msg) as e:
        load_sae(d)
    assert "\n" not in str(e.value)


def test_a_new_folder_holds_mdlcodecs_own_names_only(tmp_path):
    """Not SAELens' names (cfg.json + sae_weights.safetensors, which SAELens' load_from_disk would try),
    nor sparsify's sae.safetensors: the config as indented JSON, the weights as safetensors."""
    sae = _sae("batchtopk", threshold=0.5, input_scale=1.7)
    d = save_sae(sae, tmp_path / "m")
    assert _names(d) == sorted([CFG_FILE, WEIGHTS_FILE])
    assert not {CFG_FILE, WEIGHTS_FILE} & {"cfg.json", "sae_weights.safetensors", "sae.safetensors", "config.json", "ae.pt"}
    assert (d / CFG_FILE).read_text() == json.dumps(sae.cfg.to_dict(), indent=2) + "\n"
    w = safetensors.torch.load_file(str(d / WEIGHTS_FILE))
    assert sorted(w) == ["W_dec", "W_enc", "b_dec", "b_enc"] and torch.equal(w["W_dec"], sae.W_dec)
    assert model_files(d) == (d / CFG_FILE, d / WEIGHTS_FILE) and holds_sae(d)


def test_a_folder_saved_before_issue_20_loads_and_a_save_into_it_replaces_the_old_files(tmp_path):
    sae = _sae("topk", input_scale=1.7)
    d = _to_old_layout(save_sae(sae, tmp_path / "m"))
    (d / "codec.safetensors").write_bytes(b"tables")  # the codec's files and others are left alone
    assert model_files(d) == (d / OLD_CFG_FILE, d / OLD_WEIGHTS_FILE) and holds_sae(d)
    back = load_sae(d)
    assert back.cfg == sae.cfg and all(torch.equal(getattr(back, n), getattr(sae, n)) for n in ("W_enc", "W_dec"))
    other = _sae("topk", seed=5)
    save_sae(other, d)
    assert _names(d) == sorted([CFG_FILE, WEIGHTS_FILE, "codec.safetensors"])
    assert torch.equal(load_sae(d).W_dec, other.W_dec) and (d / "codec.safetensors").read_bytes() == b"tables"


def test_a_half_replaced_old_folder_loads_the_new_files_and_the_next_save_finishes(tmp_path):
    """Interrupted after the new files and the old weights' removal: the new names win."""
    d = save_sae(_sae(seed=5), tmp_path / "m")
    (d / OLD_CFG_FILE).write_text(json.dumps(_sae(seed=0).cfg.to_dict()))
    assert torch.equal(load_sae(d).W_dec, _sae(seed=5).W_dec)
    save_sae(_sae(seed=6), d)
    assert _names(d) == sorted([CFG_FILE, WEIGHTS_FILE])


def test_a_save_keeps_a_saelens_folder_that_shares_the_old_names(tmp_path):
    """cfg.json with SAELens' metadata (export --to saelens, or SAELens itself) is not mdlcodec's."""
    d = tmp_path / "m"
    export_saelens(_sae(seed=0), d)
    before = {n: (d / n).read_bytes() for n in _names(d)}
    save_sae(_sae(seed=5), d)
    assert _names(d) == sorted([*before, CFG_FILE, WEIGHTS_FILE])
    assert all((d / n).read_bytes() == b for n, b in before.items())
    assert torch.equal(load_sae(d).W_dec, _sae(seed=5).W_dec)


@pytest.mark.parametrize("layout", ["new", "old"])
def test_detect_calls_both_layouts_an_mdlcodec_model(tmp_path, layout):
    d = save_sae(_sae(), tmp_path / "m")
    if layout == "old":
        _to_old_layout(d)
    with pytest.raises(ModelError, match="is an mdlcodec model already"):
        detect(d)
    with pytest.raises(ModelError, match="already holds an SAE"):
        check_model_output(d)
    check_model_output(d, overwrite=True)


def test_detect_calls_a_folder_with_either_new_name_an_mdlcodec_model(tmp_path):
    d = save_sae(_sae(), tmp_path / "m")
    (d / CFG_FILE).unlink()
    with pytest.raises(ModelError, match=f"mdlcodec model already .{WEIGHTS_FILE}"):
        detect(d)
    with pytest.raises(ModelError, match=f"{CFG_FILE} is missing"):
        load_sae(d)


def test_saelens_no_longer_tries_an_mdlcodec_folder_but_reads_its_export(tmp_path):
    """SAELens' load_from_disk (when installed) refuses an mdlcodec folder at once (no cfg.json),
    where it failed with KeyError 'dtype' on the old names; ``export --to saelens`` is read and
    computes what the mdlcodec SAE computes."""
    sae_lens = pytest.importorskip("sae_lens")
    sae = _sae("topk", input_scale=1.7)
    d = save_sae(sae, tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        sae_lens.SAE.load_from_disk(str(d))
    theirs = sae_lens.SAE.load_from_disk(str(export_saelens(sae, tmp_path / "e")))
    x = _x()
    with torch.no_grad():
        np.testing.assert_allclose(theirs.decode(theirs.encode(x)).numpy(), sae(x)[0].numpy(), rtol=1e-4, atol=1e-5)
