"""models.sparse_decode and the trainer's use of it: the sparse decode and the sparse encoder gradient
give the dense products' values and gradients; a sparse training matches a dense one; the learning-rate
warm-up; the dead-latent window in tokens; the initialisation."""

from __future__ import annotations

import pytest
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.data import load_dataset
from mdlcodec.models import SAEConfig, TrainConfig, make_sae, train_sae
from mdlcodec.models.sparse_decode import sparse_decode, sparse_grad_pre_acts
from tests.models.helpers import _sae, _x

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = dict(rtol=1e-5, atol=1e-5)


def _grads(loss: torch.Tensor, *params: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params))


def test_sparse_decode_gives_the_dense_product_and_its_gradients():
    torch.manual_seed(0)
    W = torch.randn(40, 12, requires_grad=True)
    z = torch.randn(9, 40).relu() * (torch.rand(9, 40) < 0.2)
    z[3] = 0  # a sample with no active latent decodes to 0
    z.requires_grad_(True)
    target = torch.randn(9, 12)
    dense, sparse = z @ W, sparse_decode(z, W)
    torch.testing.assert_close(sparse, dense, **TOL)
    assert sparse[3].abs().max() == 0
    gd = _grads((dense - target).pow(2).sum(), z, W)
    gs = _grads((sparse - target).pow(2).sum(), z, W)
    torch.testing.assert_close(gs[1], gd[1], **TOL)                    # W: the active rows, zeros elsewhere
    assert gs[1][(z == 0).all(0)].abs().max() == 0
    on = z != 0
    torch.testing.assert_close(gs[0][on], gd[0][on], **TOL)           # z: its nonzero entries only
    assert gs[0][~on].abs().max() == 0


@pytest.mark.parametrize("arch, subtract", [("topk", True), ("batchtopk", True), ("batchtopk", False), ("tree", True)])
def test_sparse_grad_pre_acts_is_pre_acts_with_the_same_gradients(arch, subtract):
    kw = {"parents": [-1] * 10 + list(range(10))} if arch == "tree" else {}
    sae = _sae("batchtopk" if arch == "tree" else arch, d_sae=20, apply_b_dec_to_input=subtract)
    if arch == "tree":
        tree = make_sae(SAEConfig("tree", 12, 20, k=3), **kw)
        tree.load_state_dict({**sae.state_dict(), "parents": tree.parents})
        sae = tree
    sae.train()
    x = _x(30) * 1.7
    target = torch.randn(30, 12, generator=torch.Generator().manual_seed(5))
    params = [sae.W_enc, sae.b_enc, sae.b_dec, sae.W_dec]

    def loss(pre: torch.Tensor, sparse: bool) -> torch.Tensor:
        z = sae.activate_train(pre)
        x_hat = (sparse_decode(z, sae.W_dec) if sparse else z @ sae.W_dec) + sae.b_dec
        return (x_hat - target).pow(2).sum(1).mean()

    pre_dense, pre_sparse = sae.pre_acts(x), sparse_grad_pre_acts(sae, x)
    assert torch.equal(pre_sparse, pre_dense)  # the same float32 values, computed the same way
    gd = _grads(loss(pre_dense, False), *params)
    gs = _grads(loss(pre_sparse, True), *params)
    for name, a, b in zip(("W_enc", "b_enc", "b_dec", "W_dec"), gs, gd):
        torch.testing.assert_close(a, b, **TOL, msg=name)
    assert gs[0].abs().max() > 0 and gs[2].abs().max() > 0


def test_sparse_training_matches_dense_training():
    ds = load_dataset("toy:n=3000")
    cfg = SAEConfig("batchtopk", ds.d, 128, k=2)
    out = {}
    for sparse in (True, False):
        sae, res = train_sae(cfg, ds.train, None, TrainConfig(progress=False, epochs=2, dead_after=256, sparse=sparse))
        out[sparse] = sae, res
    assert out[True][1].history[-1]["auxk_loss"] > 0 and out[True][1].history[-1]["dead"] > 0  # AuxK ran
    for name, a in out[True][0].state_dict().items():
        torch.testing.assert_close(a, out[False][0].state_dict()[name], rtol=1e-3, atol=1e-4, msg=name)


def test_learning_rate_warms_up_linearly():
    ds = load_dataset("toy:n=3000")
    tcfg = TrainConfig(progress=False, epochs=4, batch_size=256, lr_warmup_steps=10_000, lr_decay_fraction=0.0)
    _, res = train_sae(SAEConfig("topk", ds.d, 16, k=2), ds.train, None, tcfg)
    steps = 2160 // 256  # training rows per epoch (2,400 less 10% held out) // batch
    total = 4 * steps    # the warm-up is capped at the steps before the decay: all of them here
    # the rate after each epoch's last step: the one the next step would use (0 once all have run)
    assert [h["lr"] for h in res.history] == pytest.approx([tcfg.lr * (e * steps + 1) / total for e in (1, 2, 3)] + [0])


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_a_bad_warm_up_is_refused(bad):
    ds = load_dataset("toy:n=300")
    with pytest.raises(ModelError, match="lr_warmup_steps"):
        train_sae(SAEConfig("topk", ds.d, 8, k=2), ds.train, None, TrainConfig(progress=False, lr_warmup_steps=bad))


def test_dead_latents_are_counted_over_a_window_of_training_tokens():
    """Five latents that never fire are dead once dead_after tokens have passed, not before; the
    history states the window."""
    ds = load_dataset("toy:n=3000")
    cfg = SAEConfig("topk", ds.d, 16, k=3)
    init = make_sae(cfg, torch.Generator().manual_seed(0))
    with torch.no_grad():
        init.b_enc[:5] = -1e4
    tokens = (2160 // 256) * 256  # one epoch's training tokens (2,400 less 10% held out, whole batches)
    for window, dead in ((tokens, 5), (tokens + 1, 0)):
        _, res = train_sae(cfg, ds.train, None, TrainConfig(progress=False, epochs=1, dead_after=window), init=init)
        assert res.history[0]["dead_window"] == window
        assert res.history[0]["dead"] == dead


def test_the_encoder_starts_as_the_decoders_transpose_with_unit_rows():
    sae = make_sae(SAEConfig("batchtopk", 12, 30, k=3), torch.Generator().manual_seed(0))
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(30))
    assert torch.equal(sae.W_enc, sae.W_dec.T)
