"""The .mdlc container (mdlcodec.codec.format.container): exact round trips through bytes, refusal of
damaged or mismatched files."""

import numpy as np
import pytest

from mdlcodec.core.errors import CodecError
from tests.codec.helpers import linear_topk_codec


@pytest.mark.parametrize("embed", [False, True])
def test_bytes_round_trip(embed):
    codec, rng = linear_topk_codec()
    x = rng.normal(size=(37, 12)).astype(np.float32)
    data = codec.encode(x, chunk_size=10, embed_model=embed, file_id="ab" * 16)
    assert codec.decode_latents(data) == codec.latents(x, chunk_size=10)
    np.testing.assert_array_equal(codec.decode(data), codec.reconstruct(codec.latents(x, chunk_size=10)))
    assert codec.encode(x, chunk_size=10, embed_model=embed, file_id="ab" * 16) == data  # deterministic
    other = codec.encode(x, chunk_size=10, embed_model=embed)  # a new random file id: only it and CRCs differ
    assert len(other) == len(data) and other != data and codec.decode_latents(other) == codec.decode_latents(data)


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
