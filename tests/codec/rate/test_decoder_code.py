"""Decoder rows coded at a precision (issue 20 §4): the model term of the honest two-part code."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mdlcodec.codec import Codec
from mdlcodec.codec.format.container import Reader
from mdlcodec.codec.rate.decoder_code import CodedRows
from mdlcodec.codec.rate.two_part import break_even, fit_two_part
from mdlcodec.core.errors import CodecError


def _W(seed=0, d_sae=40, d_in=12):
    W = np.random.default_rng(seed).standard_normal((d_sae, d_in)).astype(np.float32)
    W[3] = 0.0  # a zero row stays zero
    return W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)


@pytest.mark.parametrize("levels", [1, 7, 64, 4096])
def test_rows_decode_to_their_quantisation_within_half_a_step(levels):
    W = _W()
    coded, W_hat = CodedRows.encode(W, levels)
    assert np.array_equal(coded.decode(), W_hat)  # what the stream gives back
    h = np.abs(W).max(axis=1) / levels
    assert np.all(np.abs(W_hat - W) <= h[:, None] * 0.5 + 1e-7)
    assert np.array_equal(CodedRows.from_arrays(coded.to_arrays(), W.shape[1]).decode(), W_hat)
    assert not W_hat[3].any()
    if levels <= 64:
        assert coded.bits() < 32 * W.size  # shorter than float32 rows


def test_the_payload_is_the_cross_entropy_of_the_symbols():
    W = _W(1, 400, 64)
    coded, _ = CodedRows.encode(W, 32)
    p = (coded.counts + 1) / (coded.counts + 1).sum()
    ideal = -(coded.counts * np.log2(p)).sum()
    assert 32 * len(coded.words) <= ideal * 1.01 + 64


@pytest.mark.parametrize("damage, words", [
    (lambda a: a.update(W_dec_levels=np.array([0], np.int64)), "W_dec_levels"),
    (lambda a: a.update(W_dec_levels=np.array([1 << 20], np.int64)), "W_dec_levels"),
    (lambda a: a.update(W_dec_counts=a["W_dec_counts"][:-1]), "W_dec_counts has shape"),
    (lambda a: a.update(W_dec_counts=a["W_dec_counts"] * 2), "counts >= 0 of every coded weight"),
    (lambda a: a.update(W_dec_row_scale=np.full(len(a["W_dec_row_scale"]), np.nan, np.float32)), "finite"),
    (lambda a: a.update(W_dec_words=a["W_dec_words"][: len(a["W_dec_words"]) // 2]), "decode"),
    (lambda a: a.update(W_dec_words=a["W_dec_words"].astype(np.int64)), "W_dec_words is int64"),
])
def test_damaged_coded_rows_are_refused(damage, words):
    arrays = CodedRows.encode(_W(), 16)[0].to_arrays()
    damage(arrays)
    with pytest.raises(ValueError, match=words):
        CodedRows.from_arrays(arrays, 12).decode()


def test_a_self_contained_file_carries_the_coded_decoder():
    """Encoded with coded rows, the file decodes without the model, to what the coded decoder gives."""
    from mdlcodec.codec.rate.precision import fit_codec
    from tests.models.helpers import _sae

    sae = _sae("topk", d_in=12, d_sae=20)
    x = np.random.default_rng(0).standard_normal((600, 12)).astype(np.float32)
    codec, _ = fit_codec(sae, x[:400], x[400:], step=0.1)
    coded = Codec(codec.decoder.with_coded_rows(8), codec.quantiser, codec.entropy_model, codec.encoder)
    blob = coded.encode(x[400:], embed_model=True)
    own = Codec.from_model_section(Reader.open(io.BytesIO(blob)).model_bytes)
    assert own.decoder.coded is not None and own.decoder.bits() == coded.decoder.bits()
    assert np.array_equal(own.decode(blob), coded.decode(blob))
    assert own.decoder.bits() < codec.decoder.bits()


def test_two_part_keeps_the_tolerance_and_the_shortest_total():
    from mdlcodec.codec.rate.precision import fit_codec
    from tests.models.helpers import _sae

    sae = _sae("topk", d_in=12, d_sae=20)
    x = np.random.default_rng(1).standard_normal((1500, 12)).astype(np.float32)
    codec, report = fit_codec(sae, x[:1000], x[1000:], step=0.05)
    tol = report["test_mse"] * 1.05
    best, rep = fit_two_part(codec, x[:1000], x[1000:], tol)
    x_hat = best.reconstruct(best.latents(x[1000:]))
    assert np.mean((x_hat.astype(np.float64) - x[1000:]) ** 2) <= tol * (1 + 1e-6)
    totals = [r["total_bits"] for r in rep["levels"] if "total_bits" in r]
    assert rep["chosen"]["total_bits"] == min(totals)
    with pytest.raises(CodecError, match="no decoder precision"):
        fit_two_part(codec, x[:1000], x[1000:], report["test_mse"] * 0.5)


def test_break_even():
    assert break_even(100.0, 5000.0, 110.0, 1000.0) == pytest.approx(400.0)
    assert break_even(120.0, 10.0, 110.0, 1000.0) is None
    assert break_even(100.0, 10.0, 110.0, 1000.0) == 0.0


def test_a_huge_decoder_in_a_few_bytes_is_refused_before_decoding():
    arrays = {"W_dec_levels": np.array([1], np.int64), "W_dec_row_scale": np.ones(1 << 12, np.float32),
              "W_dec_counts": np.array([0, 1 << 24, 0], np.int64), "W_dec_words": np.zeros(4, np.uint32)}
    with pytest.raises(ValueError, match="a weight"):
        CodedRows.from_arrays(arrays, 1 << 12)
