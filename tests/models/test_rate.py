"""mdlcodec.models.rate and objective "mdl" in the trainer: the rate estimate against a real coded
file, its gradients, a short MDL training against an MSE one, and the refused architectures
(`mdlcodec train --objective mdl` is in tests/cli/test_train_cmd.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec
from mdlcodec.codec.files import payload_bits
from mdlcodec.core.errors import ModelError
from mdlcodec.data import load_dataset
from mdlcodec.models import SAEConfig, TrainConfig, evaluate, make_sae, train_sae
from mdlcodec.models.rate import RateModel, dual_ascent, straight_through_gate
from mdlcodec.models.train import TARGET_FRACTION

pytestmark = pytest.mark.usefixtures("one_thread")

D = 8
STEP = 0.5


def _identity_sae():
    """A batchtopk SAE whose latents are its inputs' positive entries (W_enc = W_dec = I, threshold 0)."""
    sae = make_sae(SAEConfig("batchtopk", D, D, k=D, threshold=0.0))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(D))
        sae.W_dec.copy_(torch.eye(D))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def _latents(n: int, seed: int) -> np.ndarray:
    """Each feature f fires with probability 0.05 + 0.1 f, with a value of at least one step (so no
    value rounds to bin 0), from a gamma distribution whose scale grows with f."""
    rng = np.random.default_rng(seed)
    p = 0.05 + 0.1 * np.arange(D)
    on = rng.random((n, D)) < p
    vals = STEP + rng.gamma(2.0, 0.4 + 0.2 * np.arange(D), size=(n, D))
    return np.where(on, vals, 0.0).astype(np.float32)


def _fit_rate(z: torch.Tensor, steps: int = 300) -> RateModel:
    """A RateModel with the step fixed, started on z and its densities fitted to z's noisy values."""
    torch.manual_seed(0)
    rate = RateModel(D, step=STEP)
    rate.start(z)
    opt = torch.optim.Adam(rate.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        _, act, val = rate(z, z, torch.zeros(()), gen)
        opt.zero_grad()
        (act + val).mean().backward()
        opt.step()
    return rate


def test_rate_estimate_matches_the_coded_file():
    """The estimate (activity under the firing frequencies, values under the fitted densities with
    one step of noise) is within 5% of the payload of a real .mdlc file of the same latents."""
    train, test = _latents(6000, 0), _latents(3000, 1)
    sae = _identity_sae()
    codec = Codec.fit(sae, train, STEP)
    measured = payload_bits(codec.encode(test)) / len(test)
    rate = _fit_rate(torch.from_numpy(train))
    with torch.no_grad():
        zt = torch.from_numpy(test)
        _, act, val = rate(zt, zt, torch.zeros(()), torch.Generator().manual_seed(2))
    estimate = float((act + val).mean())
    assert abs(estimate - measured) / measured < 0.05, (estimate, measured)
    # the activity part alone is the codec's per-feature code: sum_f H(p_f) on average
    p = (train > 0).mean(0)
    h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p)).sum()
    assert abs(float(act.mean()) - h) / h < 0.03


def test_gate_gradient_is_the_straight_through_kernel():
    pre = torch.tensor([[0.0, 0.9, 1.2, 3.0]], requires_grad=True)
    theta = torch.tensor([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    gate = straight_through_gate(pre, theta, pre > theta, bandwidth=0.5)
    assert gate.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    gate.sum().backward()
    assert pre.grad.tolist() == [[0.0, 2.0, 2.0, 0.0]]  # 1/eps within eps/2 of the threshold
    assert theta.grad.tolist() == [0.0, -2.0, -2.0, 0.0]
    with pytest.raises(ModelError):
        straight_through_gate(pre, theta, pre > theta, bandwidth=0.0)


def test_rate_gradients_are_finite():
    z = torch.from_numpy(_latents(256, 3))
    rate = RateModel(D)  # learned step
    pre = z.clone().requires_grad_(True)
    y, act, val = rate(pre, pre * (z > 0), torch.full((D,), 0.1, requires_grad=True), torch.Generator())
    ((y ** 2).sum() + act.sum() + val.sum()).backward()
    for t in (pre.grad, rate.loc.grad, rate.log_scale.grad, rate.logit.grad, rate.log_step.grad):
        assert t is not None and torch.isfinite(t).all()
    assert rate.log_step.grad != 0


def test_dual_ascent_moves_beta_toward_the_target_and_stays_bounded():
    assert dual_ascent(0.0, mse=0.5, target=1.0) > 0 > dual_ascent(0.0, mse=2.0, target=1.0)
    lb = 0.0
    for _ in range(10_000):
        lb = dual_ascent(lb, mse=100.0, target=1.0)
    assert np.isfinite(lb) and lb == pytest.approx(np.log(1e-3))


@pytest.fixture(scope="module")
def toy():
    return load_dataset("toy:n=3000")


def _rate_of(sae, x) -> float:
    """The trained SAE's test latents' estimated bits: started on them, densities fitted (step 0.5)."""
    z = sae.encode(torch.from_numpy(np.asarray(x))).detach()
    global D
    d, D = D, z.shape[1]
    try:
        rate = _fit_rate(z, steps=150)
        with torch.no_grad():
            _, act, val = rate(z, z, torch.zeros(()), torch.Generator().manual_seed(2))
    finally:
        D = d
    return float((act + val).mean())


def test_mdl_training_lowers_the_rate_at_similar_mse(toy):
    """batchtopk, same k and budget: objective mdl with its beta steered to the MSE objective's own
    held-out MSE (plus 10%) codes the test latents in fewer estimated bits."""
    cfg = SAEConfig("batchtopk", toy.d, 64, k=6)
    mse_sae, _ = train_sae(cfg, toy.train, None, TrainConfig(progress=False, epochs=12))
    m0 = evaluate(mse_sae, toy.test)["mse"]
    tcfg = TrainConfig(objective="mdl", target_mse=1.1 * m0 / TARGET_FRACTION, beta=0.1, rate_step=STEP,
                       progress=False, epochs=12)
    mdl_sae, res = train_sae(cfg, toy.train, None, tcfg)
    assert mdl_sae.cfg.objective == "mdl" and "rate_bits" in res.history[-1]
    m1 = evaluate(mdl_sae, toy.test)["mse"]
    assert m1 < 1.5 * m0
    assert _rate_of(mdl_sae, toy.test) < _rate_of(mse_sae, toy.test)


def test_jumprelu_trains_with_objective_mdl_and_saves_its_thresholds(toy, tmp_path):
    from mdlcodec.models import load_sae, save_sae
    sae, _ = train_sae(SAEConfig("jumprelu", toy.d, 32), toy.train, None,
                       TrainConfig(objective="mdl", beta=0.05, epochs=3, progress=False))
    assert isinstance(sae.threshold, torch.Tensor) and not isinstance(sae.threshold, torch.nn.Parameter)
    assert (sae.threshold > 0).any() and (sae.threshold >= 0).all()
    save_sae(sae, tmp_path / "j")
    back = load_sae(tmp_path / "j")
    assert back.cfg.objective == "mdl" and torch.equal(back.threshold, sae.threshold)
    x = torch.from_numpy(np.asarray(toy.test[:50]))
    assert torch.equal(back.encode(x), sae.encode(x))


@pytest.mark.parametrize("arch, objective, words", [
    ("relu", "mdl", "threshold or k"),
    ("jumprelu", "mse", "only with objective mdl"),
])
def test_refused_combinations(toy, arch, objective, words):
    cfg = SAEConfig(arch, toy.d, 16, l1_coeff=0.1 if arch == "relu" else None)
    with pytest.raises(ModelError, match=words) as e:
        train_sae(cfg, toy.train[:200], None, TrainConfig(objective=objective, epochs=1, progress=False))
    assert e.value.param == "objective"


def test_rate_settings_need_objective_mdl(toy):
    with pytest.raises(ModelError, match="only apply to objective mdl"):
        train_sae(SAEConfig("batchtopk", toy.d, 16, k=2), toy.train[:200], None,
                  TrainConfig(beta=1.0, epochs=1, progress=False))
