"""mdlcodec.models.base: the registry of architectures, the decode rule, and refused configs."""

from __future__ import annotations

import pytest
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.models import ARCHITECTURES, SAE, SAEConfig, make_sae, register
from tests.models.helpers import _sae, _x


def test_registry_has_the_three_architectures():
    assert {"topk", "batchtopk", "relu"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu"])
def test_decode_is_exactly_the_documented_formula(arch):
    sae = _sae(arch, input_scale=2.5)
    x = _x()
    x_hat, z = sae(x)
    assert torch.equal(z, sae.encode(x))
    assert torch.equal(x_hat, (z @ sae.W_dec + sae.b_dec) / 2.5)
    pre = ((x * 2.5) - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert torch.equal(pre, sae.pre_acts(x * 2.5))


@pytest.mark.parametrize("cfg, msg", [
    (SAEConfig("gated", 4, 8, k=2), "unknown architecture"),
    (SAEConfig("topk", 4, 0, k=2), "width"),
    (SAEConfig("topk", 4, 8, k=9), "k <= width"),
    (SAEConfig("batchtopk", 4, 8), "needs k"),
    (SAEConfig("relu", 4, 8), "l1_coeff"),
    (SAEConfig("topk", 4, 8, k=2, input_scale=0.0), "input_scale"),
])
def test_make_sae_refuses_bad_configs(cfg, msg):
    with pytest.raises(ModelError, match=msg):
        make_sae(cfg)


def test_the_registry_stays_open():
    @register("test_dense")
    class Dense(SAE):
        def activate(self, pre):
            return pre.relu()
    try:
        sae = make_sae(SAEConfig("test_dense", 4, 6))
        assert isinstance(sae, Dense) and sae.encode(torch.ones(2, 4)).shape == (2, 6)
    finally:
        del ARCHITECTURES["test_dense"]
