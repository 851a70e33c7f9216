"""SAE.encode_sparse: each row's active latents as (values, indices), bit for bit the nonzeros of the
dense encode, for every architecture (issue 10: the codec encodes from the sparse form)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdlcodec.models import SAE, SAEConfig, make_sae
from mdlcodec.models.topk import TopKSAE

pytestmark = pytest.mark.usefixtures("one_thread")

D_IN, D_SAE = 12, 48
# a forest with roots 0..7 and chains down to depth 5 (child f's parent is below it)
PARENTS = np.array([-1] * 8 + [0, 1, 2, 3, 8, 9, 10, 12, 13, 14, 15, 16, 17] + list(range(8, 35)), dtype=np.int64)


def _sae(arch: str, seed: int = 0, **kw) -> SAE:
    structure = {"parents": PARENTS} if arch == "tree" else {}
    cfg = SAEConfig(arch, D_IN, D_SAE, input_scale=1.7, **kw)
    sae = make_sae(cfg, torch.Generator().manual_seed(seed), **structure)
    with torch.no_grad():  # biases that make some rows far busier than others
        g = torch.Generator().manual_seed(seed + 1)
        sae.b_enc.copy_(0.3 * torch.randn(D_SAE, generator=g) - 0.5)
        sae.b_dec.copy_(0.1 * torch.randn(D_IN, generator=g))
    return sae.eval()


def _x(n: int = 300, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D_IN, generator=g) * torch.rand(n, 1, generator=g) * 2  # rows of many scales


CASES = {
    "topk": dict(arch="topk", k=6),
    "batchtopk, no threshold (per-sample top-k)": dict(arch="batchtopk", k=6),
    "batchtopk, threshold": dict(arch="batchtopk", k=6, threshold=0.25),
    "relu": dict(arch="relu", l1_coeff=0.1),
    "tree, threshold": dict(arch="tree", k=6, threshold=0.05),
    "tree, no threshold": dict(arch="tree", k=10),
}


def assert_sparse_matches_dense(sae: SAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        z = sae.encode(x)
        values, indices = sae.encode_sparse(x)
    assert values.dtype == torch.float32 and indices.dtype == torch.int64
    assert values.shape == indices.shape and values.shape[0] == len(x)
    active = z != 0
    assert values.shape[1] == (int(active.sum(1).max()) if len(x) else 0)  # m: the busiest row's count
    for r in range(len(x)):  # indices distinct within a row (padding included)
        assert len(set(indices[r].tolist())) == indices.shape[1]
    kept = values != 0
    rows = torch.arange(len(x)).unsqueeze(1).expand_as(indices)
    dense = torch.zeros_like(z)
    dense[rows[kept], indices[kept]] = values[kept]
    assert torch.equal(dense != 0, active)
    # bit for bit: compare the float32 patterns, not the numbers
    assert torch.equal(dense[active].view(torch.int32), z[active].view(torch.int32))
    return values, indices


@pytest.mark.parametrize("case", list(CASES))
def test_sparse_form_is_the_dense_encodes_nonzeros_bit_for_bit(case):
    sae = _sae(**CASES[case])
    x = _x()
    values, _ = assert_sparse_matches_dense(sae, x)
    with torch.no_grad():
        counts = (sae.encode(x) != 0).sum(1)
    assert counts.min() < counts.max(), "the case should have rows of different L0 (so some padding)"
    assert bool((values == 0).any())


@pytest.mark.parametrize("case", list(CASES))
def test_sparse_form_of_an_empty_batch_and_a_silent_batch(case):
    sae = _sae(**CASES[case])
    values, indices = assert_sparse_matches_dense(sae, torch.zeros(0, D_IN))
    assert values.shape == indices.shape == (0, 0)
    with torch.no_grad():  # every pre-activation negative: nothing fires, m = 0
        sae.b_enc.fill_(-1e3)
    values, _ = assert_sparse_matches_dense(sae, _x(20))
    assert values.shape == (20, 0)


def test_batchtopk_threshold_equal_to_a_pre_activation_is_exclusive():
    """The threshold keeps pre > t: a pre-activation exactly at t is off in both forms."""
    sae = _sae("batchtopk", k=6)
    x = _x()
    with torch.no_grad():
        pre = sae.pre_acts(x * sae.cfg.input_scale)
    sae.cfg.threshold = float(pre[pre > 0].median())  # a float32 value that occurs in pre
    assert bool((pre == sae.cfg.threshold).any())
    assert_sparse_matches_dense(sae, x)


def test_topk_with_tied_pre_activations():
    """Duplicate inputs and duplicate encoder columns give tied pre-activations: the same choice in both forms."""
    sae = _sae("topk", k=6)
    with torch.no_grad():
        sae.W_enc[:, 1::2] = sae.W_enc[:, 0::2]
        sae.b_enc[1::2] = sae.b_enc[0::2]
    x = _x(50)
    assert_sparse_matches_dense(sae, torch.cat([x, x]))


def test_tree_mask_silences_subtrees_in_sparse_form():
    """A tree SAE whose parents are forced off: their whole subtrees are off in the sparse form too."""
    sae = _sae("tree", k=6, threshold=0.0)
    with torch.no_grad():
        sae.b_enc.fill_(5.0)        # every feature above the threshold ...
        sae.b_enc[[0, 8]] = -100.0  # ... but root 0 and feature 8 (in 0's subtree, with descendants)
    values, indices = assert_sparse_matches_dense(sae, _x(40))
    silenced = {f for f in range(D_SAE) if _has_ancestor(f, 0)} | {0}
    assert not set(indices[values != 0].tolist()) & silenced
    assert values.shape[1] == D_SAE - len(silenced)


def _has_ancestor(f: int, a: int) -> bool:
    while PARENTS[f] >= 0:
        f = int(PARENTS[f])
        if f == a:
            return True
    return False


def test_a_subclass_that_changes_only_activate_gets_a_matching_sparse_form():
    """An architecture that overrides `activate` but not `activate_sparse` falls back to reading the
    dense latents, rather than inheriting a sparse form that no longer matches."""

    class HalvedTopK(TopKSAE):
        def activate(self, pre):
            return super().activate(pre) / 2

    sae = HalvedTopK(SAEConfig("topk", D_IN, D_SAE, k=5), torch.Generator().manual_seed(0)).eval()
    assert_sparse_matches_dense(sae, _x())


def test_trained_sae_save_load_keeps_the_sparse_form(tmp_path):
    """A briefly trained BatchTopK SAE (running threshold set) through save/load: still bit-identical."""
    from mdlcodec.data import load_dataset
    from mdlcodec.models import TrainConfig, load_sae, save_sae, train_sae

    ds = load_dataset("toy:n=1500,n_features=24,d=12,l0=3")
    sae, _ = train_sae(SAEConfig("batchtopk", 12, 24, k=3), ds.train, None,
                       TrainConfig(progress=False, epochs=2, seed=0))
    assert sae.cfg.threshold is not None
    save_sae(sae, tmp_path / "m")
    back = load_sae(tmp_path / "m")
    x = torch.from_numpy(np.ascontiguousarray(ds.test, np.float32))
    for model in (sae, back):
        assert_sparse_matches_dense(model, x)
