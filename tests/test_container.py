"""The .mdlc container: exact round trips through bytes, refusal of damaged or mismatched files."""

import numpy as np
import pytest

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.core.errors import CodecError


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


@pytest.mark.parametrize("embed", [False, True])
def test_bytes_round_trip(embed):
    codec, rng = linear_topk_codec()
    x = rng.normal(size=(37, 12)).astype(np.float32)
    data = codec.encode(x, chunk_size=10, embed_model=embed)
    assert codec.decode_latents(data) == codec.latents(x, chunk_size=10)
    np.testing.assert_array_equal(codec.decode(data), codec.reconstruct(codec.latents(x, chunk_size=10)))
    assert codec.encode(x, chunk_size=10, embed_model=embed) == data  # deterministic


def test_every_byte_flip_and_truncation_is_refused():
    codec, rng = linear_topk_codec(d_in=6, d_sae=10, k=2)
    data = codec.encode(rng.normal(size=(9, 6)).astype(np.float32), chunk_size=4, embed_model=True)
    for i in range(len(data)):
        damaged = bytearray(data)
        damaged[i] ^= 0x41
        with pytest.raises(CodecError):
            codec.decode_latents(bytes(damaged))
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            codec.decode_latents(data[:cut])
    with pytest.raises(CodecError, match="after the last chunk"):
        codec.decode_latents(data + b"\0")


def test_model_mismatch_is_refused():
    codec, rng = linear_topk_codec(seed=0)
    other, _ = linear_topk_codec(seed=1)
    data = codec.encode(rng.normal(size=(5, 12)).astype(np.float32))
    with pytest.raises(CodecError, match="does not match"):
        other.decode(data)


@pytest.mark.parametrize("bad, msg", [
    (np.zeros((3, 11), np.float32), "shape"),
    (np.full((3, 12), np.nan, np.float32), "NaN"),
    (np.full((3, 12), np.inf, np.float32), "NaN or Inf"),
])
def test_bad_activations_are_refused(bad, msg):
    codec, _ = linear_topk_codec()
    with pytest.raises(CodecError, match=msg):
        codec.encode(bad)
