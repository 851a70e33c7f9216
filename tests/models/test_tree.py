"""mdlcodec.models.tree: the hierarchy mask, growing a forest from activity, save/load of the forest,
trees from flat SAEs and their training (the forest checks are in tests/core/test_forest.py,
`mdlcodec train --arch tree` in tests/cli/test_train_cmd.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import scipy.sparse
import torch

from mdlcodec.core.errors import ModelError
from mdlcodec.core.forest import forest_depths
from mdlcodec.data import ToyConfig, make_toy
from mdlcodec.models import (
    SAEConfig,
    TrainConfig,
    TreeSAE,
    grow_forest,
    load_sae,
    make_sae,
    save_sae,
    train_sae,
    tree_from_flat,
)
from mdlcodec.models.io import CFG_FILE, WEIGHTS_FILE
from tests.core.helpers import PARENTS
from tests.models.helpers import _obeys, _oracle

pytestmark = pytest.mark.usefixtures("one_thread")


def _tree(threshold: float | None = 0.2, seed: int = 0) -> TreeSAE:
    sae = make_sae(SAEConfig("tree", 8, 16, k=4, threshold=threshold, input_scale=1.3),
                   torch.Generator().manual_seed(seed), parents=PARENTS)
    with torch.no_grad():
        sae.b_enc.copy_(0.1 * torch.randn(16, generator=torch.Generator().manual_seed(seed + 1)))
    return sae.eval()


def _x(n: int = 200, d: int = 8) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(3))


def _ancestors_on(on: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Reference mask, feature by feature: on [n, F] and all of each feature's ancestors on."""
    keep = on.copy()
    for f in range(len(parents)):
        g = parents[f]
        while g >= 0:
            keep[:, f] &= on[:, g]
            g = parents[g]
    return keep


# --- the mask -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["inference", "inference_topk_fallback", "train"])
def test_mask_zeroes_every_feature_below_an_inactive_one(mode):
    sae = _tree(threshold=None if mode == "inference_topk_fallback" else 0.2)
    pre = sae.pre_acts(_x() * sae.cfg.input_scale)
    flat = make_sae(SAEConfig("batchtopk", 8, 16, k=4, threshold=sae.cfg.threshold))
    z, z_flat = (sae.activate_train(pre), flat.activate_train(pre)) if mode == "train" else \
        (sae.activate(pre), flat.activate(pre))
    keep = _ancestors_on((z_flat > 0).numpy(), PARENTS)
    assert torch.equal(z, z_flat * torch.from_numpy(keep))  # BatchTopK, then the forest's mask
    assert _obeys(z, PARENTS)
    assert (z_flat > 0).sum() > (z > 0).sum() > 0  # the mask removed something, not everything


def test_a_zeroed_parent_silences_children_and_grandchildren():
    sae = _tree(threshold=0.5)
    pre = torch.zeros(2, 16)
    pre[0, [1, 2, 3, 5]] = 2.0           # root 0 off: its chain 1 -> 2 -> 3 goes; 5's parent 4 is off too
    pre[1, [0, 1, 3, 4, 6]] = 2.0        # 2 off: its child 3 goes, 0 -> 1 and 4 -> 6 stay
    for z in (sae.activate(pre), sae.activate_train(pre)):
        assert (z[0] == 0).all()
        assert torch.equal((z[1] > 0).nonzero().ravel(), torch.tensor([0, 1, 4, 6]))
    assert _obeys(sae.encode(_x()), PARENTS)


def test_training_gradients_pass_through_the_kept_latents():
    sae = _tree()
    sae.train()
    x = _x(32)
    z = sae.activate_train(sae.pre_acts(x))
    (z @ sae.W_dec).pow(2).sum().backward()
    assert sae.W_enc.grad is not None and sae.W_enc.grad.abs().sum() > 0


# --- growing the forest -------------------------------------------------------------------------------

def test_make_sae_needs_the_forest_of_the_right_length_and_only_for_trees():
    with pytest.raises(ModelError, match="needs its forest"):
        make_sae(SAEConfig("tree", 4, 4, k=2))
    with pytest.raises(ModelError, match="d_sae=4"):
        make_sae(SAEConfig("tree", 4, 4, k=2), parents=[-1, 0, 0])
    with pytest.raises(ModelError, match="takes no parents"):
        make_sae(SAEConfig("batchtopk", 4, 4, k=2), parents=[-1] * 4)
    with pytest.raises(ModelError, match="needs k"):
        make_sae(SAEConfig("tree", 4, 4), parents=[-1] * 4)
    sae = make_sae(SAEConfig("tree", 4, 4, k=2), parents=torch.tensor([-1, 0, 0, 1]))
    assert sae.parents.dtype == torch.int64 and sae.parents.tolist() == [-1, 0, 0, 1]


def test_grow_forest_picks_the_most_specific_implied_feature():
    # counts 8, 5, 2, 4, 1: 0 fires everywhere, 2 only with 1 (and half the time with 3), 3 with 1 in 3 of 4 cases
    rows = [[0, 1, 2, 3], [0, 1, 2], [0, 1, 3], [0, 1, 3], [0, 1], [0, 3], [0, 4], [0]]
    x = scipy.sparse.csr_matrix((np.ones(sum(map(len, rows))), np.concatenate(rows),
                                 np.cumsum([0] + [len(r) for r in rows])), shape=(8, 5))
    assert grow_forest(x).tolist() == [-1, 0, 1, 0, 0]      # 3 implies 1 only on 3/4 of its samples
    assert grow_forest(x, min_implication=0.75).tolist() == [-1, 0, 1, 1, 0]
    assert grow_forest((x.indptr, x.indices), n_features=6).tolist() == [-1, 0, 1, 0, 0, -1]  # 5 never fires
    with pytest.raises(ModelError, match="min_implication"):
        grow_forest(x, min_implication=0)


def test_grow_forest_breaks_ties_by_index_without_cycles():
    x = scipy.sparse.csr_matrix(np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0]]))  # three identical features
    parents = grow_forest(x)
    assert parents.tolist() == [-1, 0, 1]  # lower index ranks higher; each takes the most specific one
    forest_depths(parents)


def test_grow_forest_recovers_the_planted_toy_hierarchy():
    ds = make_toy(ToyConfig(hierarchy=8, n=4000))
    truth, act = ds.truth, ds.truth.train_activity
    parents = grow_forest((act.indptr, act.indices), n_features=act.n_features)
    children = np.flatnonzero(truth.parents >= 0)
    assert (parents[children] == truth.parents[children]).mean() >= 0.9
    assert np.array_equal(grow_forest(scipy.sparse.csr_matrix(act.to_dense())), parents)
    kids = parents >= 0
    assert (truth.probs[parents[kids]] > truth.probs[kids]).all()


# --- save/load, trees from flat SAEs, training ----------------------------------------------------------

def test_save_load_round_trip_is_bit_exact(tmp_path):
    sae = _tree(threshold=0.123456789)
    save_sae(sae, tmp_path / "m")
    back = load_sae(tmp_path / "m")
    assert isinstance(back, TreeSAE) and back.cfg == sae.cfg
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "parents"):
        assert torch.equal(getattr(back, name), getattr(sae, name))
    x = _x()
    assert torch.equal(back.encode(x), sae.encode(x)) and torch.equal(back(x)[0], sae(x)[0])
    assert json.loads((tmp_path / "m" / CFG_FILE).read_text())["architecture"] == "tree"
    weights = safetensors.torch.load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    assert weights["parents"].dtype == torch.int64 and weights["parents"].tolist() == PARENTS.tolist()


def test_flat_files_gain_no_parents(tmp_path):
    save_sae(make_sae(SAEConfig("batchtopk", 8, 16, k=4)), tmp_path / "m")
    weights = safetensors.torch.load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    assert sorted(weights) == ["W_dec", "W_enc", "b_dec", "b_enc"]


@pytest.mark.parametrize("damage, msg", [
    (lambda w: w.pop("parents"), "lacks weight(s) parents"),
    (lambda w: w.update(parents=w["parents"].float()), "expected int64"),
    (lambda w: w.update(parents=torch.tensor([1, 0] + [-1] * 14)), "cycle"),
    (lambda w: w.update(parents=torch.full((15,), -1)), "d_sae=16"),
])
def test_load_refuses_a_damaged_forest_with_one_line(tmp_path, damage, msg):
    save_sae(_tree(), tmp_path / "m")
    path = tmp_path / "m" / WEIGHTS_FILE
    weights = safetensors.torch.load_file(str(path))
    damage(weights)
    safetensors.torch.save_file(weights, str(path))
    with pytest.raises(ModelError) as e:
        load_sae(tmp_path / "m")
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_tree_from_flat_grows_the_forest_and_keeps_the_weights(hierarchy_toy):
    flat = _oracle(hierarchy_toy)
    tree = tree_from_flat(flat, hierarchy_toy.train)
    assert isinstance(tree, TreeSAE) and tree.cfg.threshold == flat.cfg.threshold and tree.cfg.k == flat.cfg.k
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(tree, name), getattr(flat, name))
    assert np.array_equal(tree.parents.numpy(), hierarchy_toy.truth.parents)
    with pytest.raises(ModelError, match="expects"):
        tree_from_flat(flat, hierarchy_toy.train[:, :5])


def test_training_a_tree_keeps_its_forest(hierarchy_toy):
    parents = hierarchy_toy.truth.parents
    tcfg = TrainConfig(progress=False, epochs=1)
    cfg = SAEConfig("tree", 64, 64, k=3)
    fresh, _ = train_sae(cfg, hierarchy_toy.train, None, tcfg, parents=parents)
    tuned, _ = train_sae(cfg, hierarchy_toy.train, None, tcfg, init=tree_from_flat(_oracle(hierarchy_toy),
                                                                                    hierarchy_toy.train))
    for sae in (fresh, tuned):
        assert np.array_equal(sae.parents.numpy(), parents) and sae.cfg.threshold is not None
        assert _obeys(sae.encode(torch.from_numpy(hierarchy_toy.test)), parents)
    assert tuned.cfg.input_scale == 1.0  # the initial SAE's scale, not a new one
    with pytest.raises(ModelError, match="needs its forest"):
        train_sae(cfg, hierarchy_toy.train, None, tcfg)
    with pytest.raises(ModelError, match="d_sae"):
        train_sae(SAEConfig("tree", 64, 32, k=3), hierarchy_toy.train, None, tcfg, init=tuned)
    with pytest.raises(ModelError, match="not both"):
        train_sae(cfg, hierarchy_toy.train, None, tcfg, init=tuned, parents=parents)
