"""mdlcodec.models.topk: exactly the k largest latents per sample."""

from __future__ import annotations

import torch

from tests.models.helpers import _sae, _x


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
