"""mdlcodec.models.evaluate: the metrics against a direct computation."""

from __future__ import annotations

import pytest
import torch

from mdlcodec.models import evaluate
from tests.models.helpers import _sae, _x


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
