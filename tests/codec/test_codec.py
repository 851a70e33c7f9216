"""mdlcodec.codec.codec with real SAEs: exact round trips of the quantised latents, bits against
theory; activations the codec refuses."""

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.format.container import Reader
from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.core.errors import CodecError
from mdlcodec.models import SAEConfig, make_sae
from tests.codec.helpers import linear_topk_codec


def sae_codec(arch, d_in, d_sae, k, step, seed, dead_bias=False):
    torch.manual_seed(seed)
    extra = {"k": k} if arch in ("topk", "batchtopk") else {"l1_coeff": 1.0}
    if arch == "batchtopk":
        extra["threshold"] = 0.05
    sae = make_sae(SAEConfig(arch=arch, d_in=d_in, d_sae=d_sae, **extra))
    if dead_bias:  # every latent below zero: all-zero samples
        with torch.no_grad():
            sae.b_enc.fill_(-1e3)
    rng = np.random.default_rng(seed)
    fit_x = rng.normal(size=(64, d_in)).astype(np.float32)
    encoder = Codec.sae_encoder(sae)
    q = Quantiser.uniform(step, d_sae)
    return Codec(Decoder.from_sae(sae), q, EntropyModel.fit(q.quantise(encoder(fit_x))), encoder), rng


@settings(max_examples=40, deadline=None)
@given(arch=st.sampled_from(["topk", "batchtopk", "relu"]), d_in=st.integers(1, 40), d_sae=st.integers(1, 300),
       k=st.integers(1, 32), n=st.integers(1, 150), chunk=st.integers(1, 80), step=st.floats(0.005, 0.5),
       dead=st.booleans(), seed=st.integers(0, 1000))
def test_decode_returns_exactly_the_quantised_latents(arch, d_in, d_sae, k, n, chunk, step, dead, seed):
    codec, rng = sae_codec(arch, d_in, d_sae, min(k, d_sae), step, seed, dead)
    x = rng.normal(size=(n, d_in)).astype(np.float32) * 3
    data = codec.encode(x, chunk_size=chunk)
    assert codec.decode_latents(data) == codec.latents(x, chunk_size=chunk)
    if dead:
        assert codec.latents(x).nnz == 0


def test_mnist_round_trip_and_bits(mnist_sae):
    ds, sae = mnist_sae
    codec, report = fit_codec(sae, ds.train, ds.test, max_mse=0.03)
    chunk = 500
    codes = codec.latents(ds.test, chunk_size=chunk)
    data = codec.encode(ds.test, chunk_size=chunk)
    assert codec.decode_latents(data) == codes
    x_hat = codec.decode(data)
    assert np.mean((x_hat - ds.test) ** 2) == pytest.approx(report["quantised_test_mse"], rel=1e-4)
    assert report["quantised_test_mse"] <= 0.03
    # Payload bits (the chunks' ANS words) within [H - 64c, 1.001 H + 64c].
    c = -(-ds.test.shape[0] // chunk)
    H = sum(codec.chunk_coder.ideal_bits(codec.latents(ds.test[s:s + chunk]))["total"]
            for s in range(0, len(ds.test), chunk))
    payload = sum(32 * len(words) for _, words in Reader.open(io.BytesIO(data)).chunks())
    assert H - 64 * c <= payload <= 1.001 * H + 64 * c


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((3, 11), np.float32), "shape"),
    (np.full((3, 12), np.nan, np.float32), "NaN"),
    (np.full((3, 12), np.inf, np.float32), "NaN or Inf"),
])
def test_bad_activations_are_refused(bad, msg):
    codec, _ = linear_topk_codec()
    with pytest.raises(CodecError, match=msg):
        codec.encode(bad)
