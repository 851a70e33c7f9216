"""mdlcodec.models.batchtopk: n * k latents across a training batch, a threshold at inference, and the
threshold as a running average."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.helpers import _sae, _x


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
