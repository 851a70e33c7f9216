"""Test helpers of the codec layer, shared by its test files."""

import numpy as np

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.sparse import SparseCodes


def random_codes(rng, n, d_sae, p, value_probs=None):
    """Independent activity with probabilities p [d_sae]; bins from value_probs (over bins 1..V) or geometric."""
    act = rng.random((n, d_sae)) < p
    if value_probs is None:
        vals = rng.geometric(0.3, (n, d_sae)) * np.where(rng.random((n, d_sae)) < 0.2, -1, 1)
    else:
        vals = 1 + rng.choice(len(value_probs), size=(n, d_sae), p=value_probs)
    return SparseCodes.from_dense(np.where(act, vals, 0))


def linear_topk_codec(d_in=12, d_sae=40, k=3, seed=0, n_fit=400):
    """A real (untrained) linear TopK encoder with a random unit-norm dictionary."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d_sae, d_in)).astype(np.float32)
    W /= np.linalg.norm(W, axis=1, keepdims=True)

    def encode(x):
        pre = np.maximum(x @ W.T, 0)
        thresh = -np.sort(-pre, axis=1)[:, k - 1:k]
        return np.where(pre >= thresh, pre, 0).astype(np.float32)

    decoder = Decoder(W, np.zeros(d_in, np.float32), 1.0)
    x = rng.normal(size=(n_fit, d_in)).astype(np.float32)
    q = Quantiser.uniform(0.1, d_sae)
    return Codec(decoder, q, EntropyModel.fit(q.quantise(encode(x))), encode), rng


def known_dictionary(seed: int, n_train: int, n_test: int):
    """(sae, train, test, tol) for the RDO tests: a TopK SAE (d_in 24, d_sae 48, k 4) whose unit-norm
    dictionary generated the data, 3 active latents of value U(0.5, 2.5) per sample, noise sd 0.02;
    tol 1.2 times the SAE's own (unquantised) test MSE."""
    import torch

    from mdlcodec.models import SAEConfig, make_sae

    rng = np.random.default_rng(seed)
    sae = make_sae(SAEConfig(arch="topk", d_in=24, d_sae=48, k=4), torch.Generator().manual_seed(0))
    W = sae.W_dec.detach().numpy()

    def sample(n):
        z = np.zeros((n, 48), np.float32)
        for _ in range(3):
            z[np.arange(n), rng.integers(0, 48, n)] = rng.uniform(0.5, 2.5, n)
        return (z @ W + rng.normal(0, 0.02, (n, 24))).astype(np.float32)
    train, test = sample(n_train), sample(n_test)
    with torch.no_grad():
        own = float(((sae(torch.tensor(test))[0].numpy().astype(np.float64) - test) ** 2).mean())
    return sae, train, test, 1.2 * own


def codes_mse(codec, codes, x) -> float:
    """MSE of codec's reconstruction of quantised latents against x [n, d_in], in float64."""
    return float(np.mean((codec.reconstruct(codes).astype(np.float64) - x) ** 2))
