"""mdlcodec.models.relu: the L1 penalty weighted by decoder norms."""

from __future__ import annotations

import torch

from tests.models.helpers import _sae, _x


def test_relu_penalty_is_l1_weighted_by_decoder_norms():
    sae = _sae("relu", l1_coeff=0.5)
    z = sae.encode(_x())
    assert torch.equal(z, torch.relu(sae.pre_acts(_x())))
    expected = 0.5 * (z * sae.W_dec.norm(dim=1)).sum(1).mean()
    assert torch.allclose(sae.sparsity_penalty(z), expected)
