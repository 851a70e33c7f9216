"""models.io.load_sae_weights: some of a saved SAE's tensors read without building the SAE (what the
process that only writes a parallel encode's file reads: W_dec and b_dec), with load_sae's checks
of every tensor's shape and of the read ones' dtype and values."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.models import load_sae, save_sae
from mdlcodec.models.io import load_sae_weights, model_files
from tests.models.helpers import _sae


def _edit(d, **tensors) -> None:
    path = model_files(d)[1]
    w = safetensors.torch.load_file(str(path))
    w.update(tensors)
    safetensors.torch.save_file(w, str(path))


@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_the_named_tensors_are_load_sae_s_bit_for_bit_and_only_they_are_read(tmp_path, arch):
    sae = _sae(arch, input_scale=1.7)
    save_sae(sae, tmp_path / "m")
    cfg, w = load_sae_weights(tmp_path / "m", ("W_dec", "b_dec"))
    assert cfg == sae.cfg and sorted(w) == ["W_dec", "b_dec"]
    back = load_sae(tmp_path / "m")
    for n, t in w.items():
        assert t.dtype == torch.float32 and torch.equal(t, getattr(back, n)) and torch.equal(t, getattr(sae, n))
    _, every = load_sae_weights(tmp_path / "m")
    assert sorted(every) == sorted(["W_enc", "b_enc", "W_dec", "b_dec", *type(sae).extra_weights])


def test_a_tensor_not_read_is_still_checked_by_shape_and_refused_by_load_sae(tmp_path):
    save_sae(_sae("topk"), tmp_path / "m")
    d_in, d_sae = load_sae(tmp_path / "m").W_enc.shape
    _edit(tmp_path / "m", W_enc=torch.full((d_in, d_sae), float("nan")))
    load_sae_weights(tmp_path / "m", ("W_dec", "b_dec"))  # W_enc is not read: its values are the workers' to check
    with pytest.raises(ModelError, match="W_enc holds NaN or Inf"):
        load_sae(tmp_path / "m")
    _edit(tmp_path / "m", W_enc=torch.zeros(d_in, d_sae + 1))
    with pytest.raises(ModelError, match=r"W_enc has shape .* implies"):  # shapes: every tensor, before any is read
        load_sae_weights(tmp_path / "m", ("W_dec", "b_dec"))


def test_a_read_tensor_of_another_dtype_or_with_nan_is_refused(tmp_path):
    save_sae(_sae("topk"), tmp_path / "m")
    W = load_sae(tmp_path / "m").W_dec.detach()
    _edit(tmp_path / "m", W_dec=W.to(torch.float16))
    with pytest.raises(ModelError, match="W_dec is torch.float16, expected float32"):
        load_sae_weights(tmp_path / "m", ("W_dec",))
    _edit(tmp_path / "m", W_dec=torch.full_like(W, float("inf")))
    with pytest.raises(ModelError, match="W_dec holds NaN or Inf"):
        load_sae_weights(tmp_path / "m", ("W_dec",))
