"""The codec encodes from the SAE's sparse form (SAE.encode_sparse, Quantiser.quantise_sparse): the
codes, tables, step search and file bytes are exactly those of the dense path it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser, SparseCodes, SparseLatents
from mdlcodec.codec.entropy.hierarchy import Hierarchy, prune_to_forest
from mdlcodec.codec.rate.precision import coarsest_step, default_step, quantised_mse
from mdlcodec.models import SAEConfig, load_sae, make_sae

pytestmark = pytest.mark.usefixtures("one_thread")

D_IN, D_SAE = 10, 40
PARENTS = np.array([-1] * 8 + list(range(0, 32)), dtype=np.int64)  # chains f -> f + 8 -> f + 16 ...
ARCHS = {
    "topk": dict(arch="topk", k=5),
    "batchtopk": dict(arch="batchtopk", k=5),
    "batchtopk-threshold": dict(arch="batchtopk", k=5, threshold=0.2),
    "relu": dict(arch="relu", l1_coeff=0.1),
    "tree": dict(arch="tree", k=5, threshold=0.05),
}


def _sae(arch, **kw):
    structure = {"parents": PARENTS} if arch == "tree" else {}
    sae = make_sae(SAEConfig(arch, D_IN, D_SAE, input_scale=0.8, **kw), torch.Generator().manual_seed(0), **structure)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        sae.b_enc.copy_(0.3 * torch.randn(D_SAE, generator=g) - 0.3)
        sae.b_dec.copy_(0.1 * torch.randn(D_IN, generator=g))
    return sae.eval()


def _x(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, D_IN)) * rng.uniform(0, 2, size=(n, 1))).astype(np.float32)


def test_quantise_sparse_gives_the_codes_of_quantise():
    rng = np.random.default_rng(0)
    n, m = 200, 7
    q = Quantiser(rng.uniform(0.05, 0.5, D_SAE).astype(np.float32))
    indices = np.stack([rng.permutation(D_SAE)[:m] for _ in range(n)])  # any order within a row
    values = rng.normal(size=(n, m)).astype(np.float32)                  # negatives too (PCA-like)
    values[rng.random((n, m)) < 0.3] = 0.0                                # padding
    values[rng.random((n, m)) < 0.1] *= 1e-3                              # bin 0: dropped
    dense = np.zeros((n, D_SAE), np.float32)
    np.put_along_axis(dense, indices, values, 1)
    assert q.quantise_sparse(values, indices) == q.quantise(dense)
    padded = values.copy()
    padded_idx = np.where(values == 0, 0, indices)  # padding at an index that repeats, even an active one
    assert q.quantise_sparse(padded, padded_idx) == q.quantise(dense)
    empty = q.quantise_sparse(np.zeros((3, 0), np.float32), np.zeros((3, 0), np.int64))
    assert empty == q.quantise(np.zeros((3, D_SAE), np.float32)) and empty.n == 3


def test_quantise_sparse_refuses_what_no_dense_matrix_could_be():
    q = Quantiser.uniform(0.1, D_SAE)
    with pytest.raises(ValueError, match="twice"):
        q.quantise_sparse(np.array([[1.0, 2.0]], np.float32), np.array([[3, 3]]))
    with pytest.raises(ValueError, match=r"\[0, 40\)"):
        q.quantise_sparse(np.array([[1.0]], np.float32), np.array([[D_SAE]]))
    with pytest.raises(ValueError, match="one shape"):
        q.quantise_sparse(np.ones((2, 3), np.float32), np.zeros((2, 2), np.int64))


@pytest.mark.parametrize("name", list(ARCHS))
def test_codec_latents_tables_and_bytes_are_unchanged(name):
    """Codec.fit and Codec.latents (sparse path) against the dense path: the same codes, the same
    entropy tables, and a codec that encodes from dense latents writes the same bytes."""
    sae = _sae(**ARCHS[name])
    train, x = _x(3000, 1), _x(700, 2)
    codec = Codec.fit(sae, train, 0.05)
    dense_encoder = Codec.sae_encoder(sae)

    chunk = 250
    expected = SparseCodes.concat([codec.quantise(dense_encoder(x[s:s + chunk])) for s in range(0, len(x), chunk)])
    assert codec.latents(x, chunk_size=chunk) == expected
    assert expected.nnz > 0

    fit_codes = SparseCodes.concat([codec.quantiser.quantise(dense_encoder(train[s:s + 4096]))
                                    for s in range(0, len(train), 4096)])
    if name == "tree":  # fit's "auto" hierarchy: the SAE's own forest
        fit_codes = prune_to_forest(fit_codes, PARENTS)
        em = EntropyModel.fit(fit_codes).with_hierarchy(Hierarchy.count(fit_codes, PARENTS, "tree"))
    else:
        em = EntropyModel.fit(fit_codes)
    assert em.fingerprint() == codec.entropy_model.fingerprint()

    dense_codec = Codec(codec.decoder, codec.quantiser, codec.entropy_model, dense_encoder)
    fid = "5a" * 16  # one file id for both (a new one is random)
    assert dense_codec.encode(x, chunk_size=chunk, file_id=fid) == codec.encode(x, chunk_size=chunk, file_id=fid)


@pytest.mark.parametrize("name", ["batchtopk-threshold", "tree", "relu"])
def test_step_search_is_the_same_on_sparse_latents(name):
    sae = _sae(**ARCHS[name])
    x = _x(500, 3)
    decoder = Decoder.from_sae(sae)
    dense, sparse = Codec.sae_encoder(sae)(x), Codec.sae_sparse_encoder(sae)(x)
    assert isinstance(sparse, SparseLatents) and sparse.values.shape[1] < D_SAE
    parents = PARENTS if name == "tree" else None
    assert quantised_mse(decoder, sparse, x, 0.1, parents) == quantised_mse(decoder, dense, x, 0.1, parents)
    assert default_step(decoder, sparse, x, parents=parents) == default_step(decoder, dense, x, parents=parents)
    own = float(np.mean((decoder.reconstruct(dense).astype(np.float64) - x) ** 2))
    assert coarsest_step(decoder, sparse, x, 1.5 * own) == coarsest_step(decoder, dense, x, 1.5 * own)
    # nothing active at all: the same (coarsest possible) step either way
    silent = SparseLatents(np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64))
    zero = np.zeros((len(x), D_SAE), np.float32)
    bound = 2 * float(np.mean((decoder.reconstruct(zero).astype(np.float64) - x) ** 2))
    assert coarsest_step(decoder, silent, x, bound) == coarsest_step(decoder, zero, x, bound)


def test_codec_from_an_sae_encodes_with_its_sparse_form(toy_model_dir):
    model, ds = toy_model_dir
    codec = Codec.load(model)
    assert isinstance(codec.encoder(ds.test[:10]), SparseLatents)
    dense = Codec(codec.decoder, codec.quantiser, codec.entropy_model, Codec.sae_encoder(load_sae(model)))
    assert dense.latents(ds.test, chunk_size=300) == codec.latents(ds.test, chunk_size=300)
