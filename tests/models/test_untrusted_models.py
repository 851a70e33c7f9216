"""Model folders are untrusted input too (issue 12, point 7): an mdlcodec model folder
(mdlcodec_sae.json, mdlcodec_sae.safetensors; or cfg.json, sae_weights.safetensors as versions
before issue 20 wrote them), its codec tables (codec.safetensors) and peers' folders (SAELens,
dictionary_learning's ae.pt, sparsify) with wrong keys, shapes, dtypes, values or nesting load, or
are refused with one ModelError, never another exception, and a size that the config only claims
is never allocated."""

from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdlcodec.codec import Codec
from mdlcodec.core.errors import MdlcodecError, ModelError
from mdlcodec.models.io import CFG_FILE, OLD_CFG_FILE, OLD_WEIGHTS_FILE, WEIGHTS_FILE, model_files
from mdlcodec.models.peers import import_sae
from tests.models import peer_helpers as ph

GOLDEN_MODEL = Path(__file__).parents[1] / "golden" / "model"  # saved before issue 20: cfg.json, sae_weights.safetensors
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


def _copy(tmp_path: Path, layout: str = "new") -> Path:
    """A copy of the golden model, its files under the names save_sae writes now ("new") or under
    those of the versions before issue 20 ("old", as the golden folder has them)."""
    d = tmp_path / "model"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(GOLDEN_MODEL, d)
    if layout == "new":
        (d / OLD_CFG_FILE).rename(d / CFG_FILE)
        (d / OLD_WEIGHTS_FILE).rename(d / WEIGHTS_FILE)
    return d


def _cfg(d: Path) -> Path:
    return model_files(d)[0]


def _edit_cfg(d: Path, **fields) -> None:
    cfg = json.loads(_cfg(d).read_text())
    cfg.update(fields)
    _cfg(d).write_text(json.dumps(cfg))


def _edit_weights(d: Path, **tensors) -> None:
    path = model_files(d)[1]
    w = safetensors.torch.load_file(str(path))
    for k, v in tensors.items():
        if v is None:
            w.pop(k)
        else:
            w[k] = v
    safetensors.torch.save_file(w, str(path))


@pytest.mark.parametrize(("what", "edit", "needle"), [
    ("d_sae claims 2^40", lambda d: _edit_cfg(d, d_sae=2**40), "{cfg} implies"),
    ("d_in claims 2^40", lambda d: _edit_cfg(d, d_in=2**40), "{cfg} implies"),
    ("NaN in W_dec", lambda d: _edit_weights(d, W_dec=torch.full((16, 8), float("nan"))), "NaN or Inf"),
    ("Inf in b_enc", lambda d: _edit_weights(d, b_enc=torch.full((16,), float("inf"))), "NaN or Inf"),
    ("an unknown tensor", lambda d: _edit_weights(d, extra=torch.zeros(2)), "does not have: extra"),
    ("a missing tensor", lambda d: _edit_weights(d, b_dec=None), "lacks weight"),
    ("float16 weights", lambda d: _edit_weights(d, W_enc=torch.zeros(8, 16, dtype=torch.float16)), "float16"),
    ("W_dec 3-d", lambda d: _edit_weights(d, W_dec=torch.zeros(1, 16, 8)), "shape"),
    ("config nested 100,000 deep", lambda d: _cfg(d).write_text("[" * 100_000 + "]" * 100_000), "cannot read .*{cfg}"),
    ("config a list", lambda d: _cfg(d).write_text("[1, 2]"), "{cfg} does not hold a JSON object"),
    ("d_in 1.5", lambda d: _edit_cfg(d, d_in=1.5), "integer"),
    ("unknown field", lambda d: _edit_cfg(d, colour="red"), "unknown field"),
])
@pytest.mark.parametrize("layout", ["new", "old"])
def test_model_folder_is_refused_in_one_line_without_allocating(what, edit, needle, layout, tmp_path):
    d = _copy(tmp_path, layout)
    needle = needle.format(cfg=CFG_FILE if layout == "new" else OLD_CFG_FILE)
    edit(d)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ModelError, match=needle) as e:
            Codec.load(d)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 20 << 20, (what, peak)
    assert "\n" not in str(e.value)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=6)
_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool, torch.uint8]


def _tensor(draw, like: torch.Tensor) -> torch.Tensor:
    dtype = draw(st.sampled_from([like.dtype] * 3 + _DTYPES))
    shape = draw(st.sampled_from([tuple(like.shape)] * 3 + [(), (0,), (1,), (2, 3), (1, *like.shape)]))
    t = torch.zeros(shape).to(dtype) if dtype != torch.bool else torch.zeros(shape, dtype=torch.bool)
    if shape == tuple(like.shape) and draw(st.booleans()):
        t = like.to(dtype).clone()
    if t.numel() and t.is_floating_point() and draw(st.booleans()):
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = draw(st.sampled_from([float("nan"), float("inf"), 1e30, -1.0]))
    return t


@settings(FUZZ, max_examples=120)
@given(data=st.data())
def test_model_folders_load_or_are_one_model_error(data, tmp_path):
    """Config fields set to any JSON, tensors of any dtype, shape and value, tensors dropped or
    added, codec tables' arrays changed: Codec.load gives a codec or a ModelError, nothing else."""
    d = _copy(tmp_path, data.draw(st.sampled_from(["new", "old"])))
    cfg_path, w_path = model_files(d)
    cfg = json.loads(cfg_path.read_text())
    for _ in range(data.draw(st.integers(0, 2))):
        cfg[data.draw(st.sampled_from([*cfg, "extra"]))] = data.draw(_JSON)
    cfg_path.write_text(json.dumps(cfg))
    w = safetensors.torch.load_file(str(w_path))
    for _ in range(data.draw(st.integers(0, 2))):
        key = data.draw(st.sampled_from([*w, "extra"]))
        if key in w and data.draw(st.integers(0, 4)) == 0:
            del w[key]
        else:
            w[key] = _tensor(data.draw, w.get(key, torch.zeros(3)))
    safetensors.torch.save_file({k: v.contiguous() for k, v in w.items()}, str(w_path))
    tables = d / "codec.safetensors"
    with safetensors.safe_open(str(tables), "np") as f:
        meta = f.metadata()
    t = safetensors.numpy.load_file(str(tables))
    if data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(t)))
        t[key] = _tensor(data.draw, torch.from_numpy(t[key])).numpy()
        safetensors.numpy.save_file(t, str(tables), metadata=meta)
    try:
        codec = Codec.load(d)
    except ModelError as e:
        assert "\n" not in str(e)
        return
    except MdlcodecError as e:  # the model loads, but it cannot be a codec's decoder (CodecError at most)
        pytest.fail(f"{type(e).__name__}: {e}")
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    try:
        data_ = codec.encode(x)
    except MdlcodecError:
        return
    assert codec.decode_latents(data_) == codec.latents(x)


_PEERS = ["saelens", "saelens-topk", "dictionary_learning", "dictionary_learning-topk", "sparsify"]


def _write_peer(kind: str, d: Path) -> tuple[Path, Path, Path]:
    """(folder, its JSON file, its tensor file) of a small SAE as the peer writes it."""
    if kind.startswith("saelens"):
        ph.write_saelens(d, "topk" if kind.endswith("topk") else "standard")
        return d, d / "cfg.json", d / "sae_weights.safetensors"
    if kind.startswith("dictionary_learning"):
        ph.write_dictionary_learning(d, "AutoEncoderTopK" if kind.endswith("topk") else "AutoEncoder")
        return d, d / "config.json", d / "ae.pt"
    ph.write_sparsify(d)
    return d, d / "cfg.json", d / "sae.safetensors"


_OBJECTS = st.recursive(st.none() | st.integers(-5, 5) | st.text(max_size=4) | st.floats(allow_nan=True)
                        | st.builds(lambda n: torch.zeros(n), st.integers(0, 3)),
                        lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
                        | st.dictionaries(st.one_of(st.text(max_size=4), st.integers(0, 3)), inner, max_size=3),
                        max_leaves=5)


@settings(FUZZ, max_examples=120)
@given(kind=st.sampled_from(_PEERS), data=st.data())
def test_peer_folders_import_or_are_one_model_error(kind, data, tmp_path):
    """Peers' folders with config fields set to any JSON (the trainer object of dictionary_learning's
    config.json included), tensors of any dtype, shape and value, and an ae.pt that is not a plain
    state dict (any object torch.load(weights_only=True) can build): import_sae gives an SAE or one
    ModelError."""
    d = tmp_path / "peer"
    if d.exists():
        shutil.rmtree(d)
    d, cfg_path, tensor_path = _write_peer(kind, d)
    cfg = json.loads(cfg_path.read_text())
    target = cfg["trainer"] if "trainer" in cfg else cfg
    for _ in range(data.draw(st.integers(0, 2))):
        target[data.draw(st.sampled_from([*target, "extra"]))] = data.draw(_JSON)
    cfg_path.write_text(json.dumps(cfg))
    if tensor_path.suffix == ".pt":
        state = torch.load(tensor_path, weights_only=True)
        choice = data.draw(st.integers(0, 3))
        if choice == 0:
            state = data.draw(_OBJECTS)
        elif choice == 1:
            key = data.draw(st.sampled_from(sorted(state)))
            state[key] = data.draw(_OBJECTS) if data.draw(st.booleans()) else _tensor(data.draw, state[key])
        torch.save(state, tensor_path)
    else:
        w = safetensors.torch.load_file(str(tensor_path))
        if data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(w)))
            w[key] = _tensor(data.draw, w[key])
            safetensors.torch.save_file({k: v.contiguous() for k, v in w.items()}, str(tensor_path))
    try:
        sae = import_sae(d)
    except ModelError as e:
        assert "\n" not in str(e)
        return
    x = torch.randn(4, sae.cfg.d_in)
    with torch.no_grad():
        assert sae.decode(sae.encode(x)).shape == x.shape
