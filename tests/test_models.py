"""SAE architectures, the decode rule, save/load and evaluation (no training beyond a few steps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.models import (
    ARCHITECTURES,
    SAE,
    SAEConfig,
    evaluate,
    load_sae,
    make_sae,
    register,
    save_sae,
)


def _sae(arch: str = "batchtopk", d_in: int = 12, d_sae: int = 20, seed: int = 0, **kw) -> SAE:
    kw.setdefault("k", 3 if arch != "relu" else None)
    if arch == "relu":
        kw.setdefault("l1_coeff", 0.1)
    sae = make_sae(SAEConfig(arch, d_in, d_sae, **kw), torch.Generator().manual_seed(seed))
    with torch.no_grad():  # non-trivial biases so that every term of encode/decode matters
        g = torch.Generator().manual_seed(seed + 1)
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=g))
    return sae.eval()


def _x(n: int = 50, d: int = 12, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_registry_has_the_three_architectures():
    assert {"topk", "batchtopk", "relu"} <= set(ARCHITECTURES)


def test_topk_keeps_exactly_k_nonnegative_latents_per_sample():
    sae = _sae("topk", k=4)
    z = sae.encode(_x())
    assert z.shape == (50, 20)
    assert (z >= 0).all()
    assert ((z > 0).sum(1) <= 4).all() and (z > 0).sum(1).float().mean() > 3  # k, unless fewer are positive
    pre = sae.pre_acts(_x() * sae.cfg.input_scale)
    kept = torch.where(z > 0, pre, torch.full_like(pre, torch.inf)).min(1).values
    dropped = torch.where(z == 0, pre, torch.full_like(pre, -torch.inf)).max(1).values
    assert (kept >= dropped).all()  # the kept ones are the largest


def test_batchtopk_training_selects_n_times_k_across_the_batch():
    sae = _sae("batchtopk", k=3)
    pre = sae.pre_acts(_x())
    z = sae.activate_train(pre)
    assert int((z > 0).sum()) == 50 * 3
    assert (z > 0).sum(1).unique().numel() > 1  # per-sample L0 varies


def test_batchtopk_inference_thresholds_pre_activations():
    sae = _sae("batchtopk", threshold=0.3)
    x = _x()
    pre = sae.pre_acts(x * sae.cfg.input_scale)
    z = sae.encode(x)
    assert torch.equal(z, pre * (pre > 0.3))
    assert torch.allclose(sae.encode(x[:7]), z[:7])  # independent of the batch (up to BLAS rounding)


def test_batchtopk_threshold_is_a_running_average_of_the_smallest_selected_value():
    sae = _sae("batchtopk")
    sae.observe_train(torch.tensor([[0.0, 2.0], [0.5, 0.0]]))
    assert sae.cfg.threshold == pytest.approx(0.5)
    sae.observe_train(torch.tensor([[0.0, 1.5], [0.0, 0.0]]))
    assert 0.5 < sae.cfg.threshold < 1.5
    assert sae.cfg.threshold == float(np.float32(sae.cfg.threshold))  # float32-exact


def test_relu_penalty_is_l1_weighted_by_decoder_norms():
    sae = _sae("relu", l1_coeff=0.5)
    z = sae.encode(_x())
    assert torch.equal(z, torch.relu(sae.pre_acts(_x())))
    expected = 0.5 * (z * sae.W_dec.norm(dim=1)).sum(1).mean()
    assert torch.allclose(sae.sparsity_penalty(z), expected)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu"])
def test_decode_is_exactly_the_documented_formula(arch):
    sae = _sae(arch, input_scale=2.5)
    x = _x()
    x_hat, z = sae(x)
    assert torch.equal(z, sae.encode(x))
    assert torch.equal(x_hat, (z @ sae.W_dec + sae.b_dec) / 2.5)
    pre = ((x * 2.5) - sae.b_dec) @ sae.W_enc + sae.b_enc
    assert torch.equal(pre, sae.pre_acts(x * 2.5))


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


def test_evaluate_matches_direct_computation():
    sae = _sae("topk", k=2)
    with torch.no_grad():
        sae.b_enc[5:] = -100.0  # latents 5.. never fire
    x = _x(n=37)
    with torch.no_grad():
        x_hat, z = sae(x)
    ev = evaluate(sae, x.numpy(), batch_size=8)  # several batches, numpy input
    xn, xh = x.double().numpy(), x_hat.double().numpy()
    assert ev["mse"] == pytest.approx(((xh - xn) ** 2).mean(), rel=1e-6)  # batches round differently
    assert ev["fvu"] == pytest.approx(((xh - xn) ** 2).sum() / ((xn - xn.mean(0)) ** 2).sum(), rel=1e-6)
    l0 = (z > 0).sum(1).double().numpy()
    assert ev["l0_mean"] == pytest.approx(l0.mean()) and ev["l0_std"] == pytest.approx(l0.std(), abs=1e-6)
    assert ev["alive"] == int((z > 0).any(0).sum()) <= 5
    assert ev["dead_fraction"] == pytest.approx(1 - ev["alive"] / 20)
