"""mdlcodec.models.train: recovery of planted features, MNIST quality, determinism, AuxK, early
stopping, refused input (`mdlcodec train` is in tests/cli/test_train_cmd.py)."""

from __future__ import annotations

import pytest
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.data import load_dataset
from mdlcodec.models import (
    SAEConfig,
    TrainConfig,
    evaluate,
    feature_recovery,
    make_sae,
    train_sae,
)
from mdlcodec.models.train import _auxk_loss, geometric_median, input_scale_for

QUICK = dict(progress=False, epochs=3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_toy():
    return load_dataset("toy:n=3000")


def test_batchtopk_recovers_the_planted_toy_features():
    """Done-when: 64 true features in 32 dims at L0 ~3; width 64 recovers >= 90% at cosine >= 0.9."""
    ds = load_dataset("toy")
    assert ds.truth.directions.shape == (64, 32) and abs(float(ds.truth.probs.sum()) - 3) < 0.01
    sae, _ = train_sae(SAEConfig("batchtopk", 32, 64, k=3), ds.train, None, TrainConfig(progress=False))
    assert feature_recovery(sae.W_dec.detach().numpy(), ds.truth.directions) >= 0.9
    ev = evaluate(sae, ds.test)
    assert 2 < ev["l0_mean"] < 4 and ev["l0_std"] > 0  # threshold at inference: L0 varies per sample


def test_mnist_batchtopk_reaches_a_loose_mse_bound_quickly(mnist_dir):
    """A shortened version of bench/train_mnist.py (which trains to MSE <= 0.015)."""
    ds = load_dataset(f"mnist:{mnist_dir}")
    sae, _ = train_sae(SAEConfig("batchtopk", 784, 128, k=16), ds.train, None,
                       TrainConfig(progress=False, epochs=12))
    ev = evaluate(sae, ds.test)
    assert ev["mse"] <= 0.02, ev


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(small_toy):
    cfg = SAEConfig("batchtopk", small_toy.d, 16, k=2)
    runs = [train_sae(cfg, small_toy.train, None, TrainConfig(seed=s, **QUICK))[0] for s in (7, 7, 8)]
    a, b, c = (r.state_dict() for r in runs)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert runs[0].cfg == runs[1].cfg
    assert not torch.equal(a["W_dec"], c["W_dec"])


@pytest.mark.parametrize("arch, extra", [("topk", {"k": 3}), ("batchtopk", {"k": 3}), ("relu", {"l1_coeff": 0.3})])
def test_every_architecture_trains_with_unit_norm_decoder_rows(small_toy, arch, extra):
    cfg = SAEConfig(arch, small_toy.d, 64, **extra)
    untrained = evaluate(make_sae(cfg), small_toy.test)["mse"]
    sae, result = train_sae(cfg, small_toy.train, None, TrainConfig(progress=False, epochs=10))
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)
    assert evaluate(sae, small_toy.test)["mse"] < 0.75 * untrained
    assert result.history[-1]["val_mse"] < 0.8 * result.history[0]["val_mse"]
    assert len(result.history) == 10 and {"loss", "l0", "val_mse", "dead"} <= set(result.history[0])
    assert cfg.threshold is None and cfg.input_scale == 1.0  # the caller's config is not modified
    if arch == "batchtopk":
        assert sae.cfg.threshold is not None and sae.cfg.threshold > 0


def test_relu_l1_coefficient_trades_mse_for_sparsity(small_toy):
    l0 = {}
    for c in (0.01, 1.0):
        sae, _ = train_sae(SAEConfig("relu", small_toy.d, 32, l1_coeff=c), small_toy.train, None, TrainConfig(**QUICK))
        l0[c] = evaluate(sae, small_toy.test)["l0_mean"]
    assert l0[1.0] < l0[0.01]


def test_normalisation_makes_training_scale_free(small_toy):
    """input_scale gives mean squared norm d_in; decode returns the raw scale, so FVU is unchanged."""
    x = small_toy.train * 1000.0
    s = input_scale_for(torch.from_numpy(x))
    assert float(((x * s) ** 2).sum(1).mean()) == pytest.approx(small_toy.d, rel=1e-4)
    cfg = SAEConfig("topk", small_toy.d, 32, k=3)
    fvu, scale = {}, {}
    for factor in (1.0, 1000.0):
        sae, _ = train_sae(cfg, small_toy.train * factor, None, TrainConfig(**QUICK))
        fvu[factor], scale[factor] = evaluate(sae, small_toy.test * factor)["fvu"], sae.cfg.input_scale
    assert scale[1000.0] * 1000 == pytest.approx(scale[1.0], rel=1e-5)
    assert fvu[1000.0] == pytest.approx(fvu[1.0], rel=0.05)


def test_early_stopping_keeps_the_best_epoch(small_toy):
    sae, result = train_sae(SAEConfig("topk", small_toy.d, 32, k=3), small_toy.train, small_toy.test,
                            TrainConfig(progress=False, epochs=200, patience=2, min_improvement=0.05))
    assert result.stopped_early and len(result.history) < 200
    best = min(h["val_mse"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_mse"] == best
    assert evaluate(sae, small_toy.test)["mse"] == pytest.approx(best, rel=1e-6)


def test_auxk_loss_trains_only_dead_latents_on_the_residual():
    torch.manual_seed(0)
    sae = make_sae(SAEConfig("topk", 6, 10, k=2), torch.Generator().manual_seed(1))
    x = torch.randn(32, 6)
    pre = sae.pre_acts(x)
    residual = torch.randn(32, 6)
    dead = torch.zeros(10, dtype=torch.bool)
    dead[[1, 4, 7]] = True
    loss = _auxk_loss(sae, pre, residual, dead, k_aux=2)
    # by hand: the 2 largest of the dead latents' positive pre-activations reconstruct the residual
    sub = pre.detach()[:, dead]
    vals, idx = sub.topk(2, dim=1)
    z = torch.zeros_like(sub).scatter(1, idx, vals.relu())
    expected = ((z @ sae.W_dec.detach()[dead] - residual) ** 2).sum(1).mean()  # scale min(1, 3/2) = 1
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    alive = ~dead
    assert sae.W_dec.grad[alive].abs().max() == 0 and sae.W_enc.grad[:, alive].abs().max() == 0
    assert sae.W_dec.grad[dead].abs().max() > 0


def test_geometric_median_resists_outliers():
    x = torch.cat([torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * 0.1, torch.full((20, 3), 100.0)])
    assert geometric_median(x).abs().max() < 0.5 < x.mean(0).abs().max()


def test_library_refuses_bad_training_input(small_toy):
    cfg = SAEConfig("topk", 5, 8, k=2)
    with pytest.raises(ModelError, match=r"shape \[2400, 32\].*d_in=5"):
        train_sae(cfg, small_toy.train, None, TrainConfig(**QUICK))
    with pytest.raises(ModelError, match="positive"):
        train_sae(SAEConfig("topk", 32, 8, k=2), small_toy.train, None, TrainConfig(progress=False, epochs=0))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cuda_without_cuda_is_a_clear_error(small_toy):
    with pytest.raises(ModelError, match="CUDA is not available"):
        train_sae(SAEConfig("topk", 32, 8, k=2), small_toy.train, None, TrainConfig(device="cuda", **QUICK))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda(small_toy):
    sae, _ = train_sae(SAEConfig("batchtopk", 32, 32, k=3), small_toy.train, None,
                       TrainConfig(device="cuda", **QUICK))
    assert sae.W_dec.device.type == "cuda"
    assert evaluate(sae, small_toy.test)["fvu"] < 0.6
