"""mdlcodec.baselines.stored: stored floats, int + general-purpose compressors within half a step,
and a self-contained codec method that decodes alone (the `data` fixture is in tests/conftest.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mdlcodec.baselines import COMPRESSORS, PCA, CodecMethod, IntCompressed, StoredFloat, pca_codec
from mdlcodec.codec import Codec
from mdlcodec.codec.format.container import Reader
from mdlcodec.core.errors import CodecError


def test_float32_is_exact_and_float16_rounds(data):
    _, x = data
    f32, f16 = StoredFloat("float32"), StoredFloat("float16")
    b = f32.encode(x)
    assert len(b) == 8 + 4 * x.size
    assert np.array_equal(f32.decode(b), x)
    y = f16.decode(f16.encode(x))
    assert len(f16.encode(x)) == 8 + 2 * x.size
    assert np.all(np.abs(y - x) <= np.abs(x) * 2.0 ** -11 + 1e-7)


@pytest.mark.parametrize("compressor", list(COMPRESSORS))
@pytest.mark.parametrize("bits", [8, 4])
def test_int_compressed_within_half_a_step(data, compressor, bits):
    _, x = data
    m = IntCompressed(compressor, bits)
    b = m.encode(x)
    y = m.decode(b)
    half_step = m.scales(x) / 2
    assert np.all(np.abs(y - x) <= half_step * (1 + 1e-5) + 1e-7)
    assert len(b) < x.size  # fewer bytes than the int8 array itself: the compressor did something
    with pytest.raises(CodecError):
        m.decode(b[: len(b) // 2])


def test_codec_method_self_contained_decodes_alone(data):
    train, test = data
    codec = pca_codec(PCA.fit(train), 6, 0.05, train)
    b = CodecMethod(codec, "pca", embed_model=True).encode(test)
    own = Codec.from_model_section(Reader.open(io.BytesIO(b)).model_bytes)
    assert np.array_equal(own.decode(b), codec.decode(b))
