"""A codec that trusts nothing (issue 12): each class of crafted file, with every CRC recomputed, is
refused with a CodecError through Codec.decode, decode_file and inspect_file, quickly and without
allocating what the file only claims; the encoder refuses what it cannot code. The case classes
follow the issue's list; tests/codec/test_fuzz.py fuzzes around them."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import safetensors.numpy

from mdlcodec.codec import Codec, Decoder, decode_file, encode_file, inspect_file
from mdlcodec.codec.format.bitstream import StreamError
from mdlcodec.codec.format.container import MAX_CHUNK_ROWS, Reader
from mdlcodec.core.errors import CodecError, ModelError
from tests.codec import fuzz


@pytest.fixture(scope="module")
def by_name():
    return {b.name: b for b in fuzz.bases()}


def refused(data: bytes, base: fuzz.Base, tmp_path, needle: str | None = None, seconds: float = 5.0,
            mib: float = 40.0, model_attack: bool = False):
    """Assert that every path refuses data with a CodecError (matching the regex needle), each within
    ``seconds`` and ``mib`` MiB of traced memory. With ``model_attack`` (a self-contained file whose
    model section is at fault) only the paths that decode with the file's own model: a model given
    by the caller decodes the chunks without reading the section."""
    src = tmp_path / "crafted.mdlc"
    src.write_bytes(data)
    given = None if base.embedded else base.codec
    calls = {"Codec.decode": lambda: base.codec.decode(data),
             "decode_file": lambda: decode_file(src, tmp_path / "out.npy", given, overwrite=True),
             "inspect_file": lambda: inspect_file(src, given, decode=True)}
    if base.embedded:
        calls["own model"] = lambda: Codec.from_model_section(Reader.open(io.BytesIO(data)).model_bytes).decode(data)
    if model_attack:
        del calls["Codec.decode"]
    for name, call in calls.items():
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with pytest.raises(CodecError, match=needle) as e:
                call()
        finally:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        elapsed = time.perf_counter() - t0
        assert elapsed < seconds, f"{name}: {elapsed:.1f} s ({e.value})"
        assert peak < mib, f"{name}: {peak:.0f} MiB ({e.value})"
        assert not (tmp_path / "out.npy").exists()


def crafted(base: fuzz.Base, **header) -> bytes:
    p = fuzz.parse(base.data)
    p.set_header(**header)
    return fuzz.build(p)


# -- 1. header fields of the wrong type or range -------------------------------------------------------

ISSUE_FIELDS = [("n", 1.5), ("n", "1"), ("n", None), ("n", -1), ("n", 2**64), ("n", float("inf")),
                ("chunk_size", "1"), ("chunk_size", None), ("chunk_size", []), ("chunk_size", {}),
                ("n_chunks", "1"), ("n_chunks", None), ("n_chunks", [])]


@pytest.mark.parametrize("base_name", ["referenced", "embedded", "v1-referenced"])
@pytest.mark.parametrize(("key", "value"), ISSUE_FIELDS, ids=[f"{k}={v!r}" for k, v in ISSUE_FIELDS])
def test_header_field_of_wrong_type_or_range(by_name, base_name, key, value, tmp_path):
    base = by_name[base_name]
    p = fuzz.parse(base.data)
    if value == float("inf"):
        p.header = fuzz._json_raw(p.header_fields(), key, b"Infinity")
    else:
        p.set_header(**{key: value})
    refused(fuzz.build(p), base, tmp_path, "corrupted header")


# -- 2. claimed sizes allocated before anything is checked ---------------------------------------------

@pytest.mark.parametrize("n", [2**31 - 1, 2**63 - 1])
def test_claimed_size_is_refused_before_anything_is_allocated(by_name, n, tmp_path):
    base = by_name["referenced"]
    # the chunk count made consistent with n, so that only the size is at fault
    refused(crafted(base, n=n, n_chunks=-(-n // 10)), base, tmp_path, "truncated|corrupted header", mib=2)


# -- 3. a header whose JSON nests thousands of arrays ---------------------------------------------------

def test_deeply_nested_header_json(by_name, tmp_path):
    base = by_name["embedded"]
    p = fuzz.parse(base.data)
    p.header = fuzz._json_raw(p.header_fields(), "mdlcodec", b"[" * 30_000 + b"]" * 30_000)
    refused(fuzz.build(p), base, tmp_path, "flat object")


# -- 4. 200,000 chunks of zero rows --------------------------------------------------------------------

def test_200000_chunks_of_zero_rows_are_refused_at_once(by_name, tmp_path):
    base = by_name["referenced"]
    p = fuzz.parse(base.data)
    p.set_header(n=0, n_chunks=200_000)
    p.chunks = [fuzz.Chunk(0, b"")] * 200_000
    refused(fuzz.build(p), base, tmp_path, "corrupted header", seconds=1.0)
    p.set_header(n=0, n_chunks=0)  # a header that agrees, then 200,000 chunks anyway
    refused(fuzz.build(p), base, tmp_path, "after the last chunk|footer", seconds=1.0)


# -- 5. CRC-valid words that are not an ANS stream ------------------------------------------------------

@pytest.mark.parametrize("base_name", ["referenced", "embedded", "forest-embedded", "v1-referenced", "v2-embedded"])
def test_words_that_are_not_an_ans_stream(by_name, base_name, tmp_path):
    base = by_name[base_name]
    p = fuzz.parse(base.data)
    p.chunks[0] = replace(p.chunks[0], words=bytes(len(p.chunks[0].words)))  # all-zero words
    refused(fuzz.build(p), base, tmp_path, "chunk 1 of")


@pytest.mark.parametrize("base_name", ["forest-referenced", "one-chunk"])
def test_words_that_decode_but_are_not_what_the_encoder_writes(by_name, base_name, tmp_path):
    """A damaged first word (the last to be decoded) can leave an ANS stream that still decodes, to
    other last rows, though the encoder never writes it; the decoder pushes what it read back onto a
    coder and refuses it. (Other flips of the same word give the very stream the encoder writes for other
    rows: another valid file, which no check can tell from the one intended.)"""
    base = by_name[base_name]
    p = fuzz.parse(base.data)
    words = np.frombuffer(p.chunks[0].words, "<u4").copy()
    words[0] ^= np.uint32(1 << 29)
    n = p.chunks[0].n_rows
    coder = base.codec.chunk_coder
    with pytest.raises(StreamError, match="not what the encoder writes"):  # raised only past a clean decode
        coder.decode(words, n)
    p.chunks[0] = replace(p.chunks[0], words=words.tobytes())
    refused(fuzz.build(p), base, tmp_path, "not what the encoder writes")


# -- 6. model-section arrays of the wrong rank, length or dtype ------------------------------------------

MODEL_CASES = [("W_dec", lambda v: np.asarray(v.ravel()[0])), ("W_dec", lambda v: v[None]),
               ("b_dec", lambda v: v[:0]), ("b_dec", lambda v: v[None]), ("b_dec", lambda v: v.astype(bool)),
               ("b_dec", lambda v: v.astype(np.int8)), ("n_samples", lambda v: v[None]),
               ("value_counts", lambda v: v[None]), ("step", lambda v: v.astype(np.float64)),
               ("value_offsets", lambda v: v[:-1]), ("active_counts", lambda v: v.astype(np.float32))]


@pytest.mark.parametrize(("key", "change"), MODEL_CASES,
                         ids=["W_dec 0-d", "W_dec 3-d", "b_dec empty", "b_dec 2-d", "b_dec bool", "b_dec int8",
                              "n_samples 2-d", "value_counts 2-d", "step float64", "value_offsets short",
                              "active_counts float32"])
def test_model_section_array_of_wrong_rank_length_or_dtype(by_name, key, change, tmp_path):
    base = by_name["embedded"]
    p = fuzz.parse(base.data)
    a = fuzz.model_arrays(p)
    a[key] = np.ascontiguousarray(change(a[key]))
    fuzz.set_model(p, a)
    data = fuzz.build(p)
    with pytest.raises(CodecError, match=f"model section is damaged .*{key}"):
        Codec.from_model_section(fuzz.parse(data).model)
    src = tmp_path / "m.mdlc"
    src.write_bytes(data)
    for call in (lambda: decode_file(src, tmp_path / "o.npy"), lambda: inspect_file(src, decode=True)):
        with pytest.raises(CodecError, match=key):
            call()


def test_tables_file_is_checked_as_the_model_section_is(tmp_path):
    import shutil

    from tests.codec.fuzz import GOLDEN

    model = tmp_path / "model"
    shutil.copytree(GOLDEN / "model", model)
    tables = model / "codec.safetensors"
    with safetensors.safe_open(str(tables), "np") as f:
        meta = f.metadata()
    good = safetensors.numpy.load_file(str(tables))
    for key, value in [("value_counts", good["value_counts"][None]), ("step", good["step"].astype(np.float64)),
                       ("active_counts", -good["active_counts"]), ("extra", np.zeros(2, np.float32))]:
        safetensors.numpy.save_file({**good, key: value}, str(tables), metadata=meta)
        with pytest.raises(ModelError, match=f"damaged .*{key}"):
            Codec.load(model)


# -- 7. memory and time from a few bytes -------------------------------------------------------------------

def test_one_chunk_claiming_a_billion_rows(by_name, tmp_path):
    base = by_name["one-chunk"]
    p = fuzz.parse(base.data)
    p.set_header(n=10**9, chunk_size=10**9, n_chunks=1)
    p.chunks = [replace(p.chunks[0], n_rows=10**9)]
    refused(fuzz.build(p), base, tmp_path, "chunk_size", seconds=1.0, mib=2)
    p.set_header(n=MAX_CHUNK_ROWS, chunk_size=MAX_CHUNK_ROWS, n_chunks=1)  # within the limit: a bad stream
    p.chunks = [replace(p.chunks[0], n_rows=MAX_CHUNK_ROWS)]
    refused(fuzz.build(p), base, tmp_path, "chunk 1 of 1", seconds=5.0, mib=200)


@pytest.mark.parametrize("depth", [20_000, 40_000])
def test_embedded_forest_of_one_deep_chain(by_name, depth, tmp_path):
    base = by_name["embedded"]
    refused(fuzz.build(fuzz.deep_chain(base.data, depth)), base, tmp_path, "deeper than 64|coded for an SAE",
            seconds=2.0, mib=30)


def test_model_section_length_is_checked_before_it_is_read(by_name, tmp_path):
    base = by_name["embedded"]
    p = fuzz.parse(base.data)
    p.model_length = 2**39
    refused(fuzz.build(p), base, tmp_path, "model section", seconds=1.0, mib=1)


def test_100000_chunks_of_zero_rows_with_info(by_name, tmp_path):
    base = by_name["embedded"]
    p = fuzz.parse(base.data)
    p.set_header(n=0, n_chunks=100_000, chunk_size=1)
    p.chunks = [fuzz.Chunk(0, b"")] * 100_000
    refused(fuzz.build(p), base, tmp_path, "n = 0", seconds=1.0)


# -- 8. wrong output with exit 0: chunks out of place, a model that cannot decode ------------------------

def _layout(base: fuzz.Base, order: list) -> bytes:
    """The base's chunks in another order, each keeping the CRC it was written with."""
    p = fuzz.parse(base.data)
    fid = fuzz.file_id_of(p.header)
    p.chunks = [replace(p.chunks[i], bind=(fid, i)) for i in order]
    return fuzz.build(p)


@pytest.mark.parametrize(("what", "order"), [("swapped", [1, 0, 2, 3, 4, 5]), ("reordered", [5, 4, 3, 2, 1, 0]),
                                             ("duplicated", [0, 0, 2, 3, 4, 5]), ("repeated", [0, 1, 2, 3, 4, 4]),
                                             ("dropped", [0, 1, 2, 4, 5]), ("added", [0, 1, 2, 3, 4, 5, 5])])
def test_chunks_out_of_place_are_refused(by_name, what, order, tmp_path):
    base = by_name["rows-of-one"]
    assert len(fuzz.parse(base.data).chunks) == 6
    needle = "CRC mismatch: damaged, or a chunk of another file or place" if len(order) == 6 else "CRC|footer|truncated"
    refused(_layout(base, order), base, tmp_path, needle)


def test_chunk_from_another_file_coded_with_the_same_model(by_name, tmp_path):
    base, other = by_name["referenced"], by_name["embedded"]
    p, o = fuzz.parse(base.data), fuzz.parse(other.data)
    assert o.chunks[0].n_rows == p.chunks[0].n_rows and o.chunks[0] == p.chunks[0]  # same rows, same words
    p.chunks[0] = replace(o.chunks[0], bind=(fuzz.file_id_of(o.header), 0))
    refused(fuzz.build(p), base, tmp_path, "another file")
    # the same rows coded again (a new random file id): every chunk identical but for its binding
    again = base.codec.encode(np.load(fuzz.GOLDEN / "input.npy"), chunk_size=10)
    a = fuzz.parse(again)
    p = fuzz.parse(base.data)
    p.chunks[1] = replace(a.chunks[1], bind=(fuzz.file_id_of(a.header), 1))
    refused(fuzz.build(p), base, tmp_path, "chunk 2 of 3")


def test_footer_must_index_the_chunks(by_name, tmp_path):
    base = by_name["referenced"]
    r = Reader.open(io.BytesIO(base.data))
    index = [(e.offset, e.n_rows) for e in r.chunk_index()]
    p = fuzz.parse(base.data)
    p.index = [index[1], index[0], index[2]]
    data = fuzz.build(p)
    refused(data, base, tmp_path, "footer")
    with pytest.raises(CodecError, match="footer"):
        Reader.open(io.BytesIO(data)).chunk_index()


@pytest.mark.parametrize(("key", "value", "needle"), [("W_dec", np.nan, "NaN"), ("b_dec", np.inf, "NaN or Inf"),
                                                      ("input_scale", 0.0, "input_scale"),
                                                      ("input_scale", -1.0, "input_scale"),
                                                      ("step", np.nan, "steps")])
def test_embedded_model_that_cannot_decode(by_name, key, value, needle, tmp_path):
    base = by_name["embedded"]
    p = fuzz.parse(base.data)
    a = fuzz.model_arrays(p)
    a[key] = a[key].copy()
    a[key].ravel()[0] = value
    p.model = safetensors.numpy.save(a)
    refused(fuzz.build(p), base, tmp_path, needle, model_attack=True)


def test_decoder_checks_the_weights_it_is_handed():
    W = np.ones((4, 3), np.float32)
    for bad in (dict(W_dec=np.where(np.eye(4, 3) > 0, np.nan, W).astype(np.float32)),
                dict(b_dec=np.array([0, np.inf, 0], np.float32)), dict(input_scale=0.0), dict(input_scale=np.nan),
                dict(W_dec=np.ones((0, 3), np.float32)), dict(b_dec=np.zeros(4, np.float32))):
        kw = {"W_dec": W, "b_dec": np.zeros(3, np.float32), "input_scale": 1.0, **bad}
        with pytest.raises(ValueError):
            Decoder(**kw)


def test_decoded_values_that_overflow_float32_are_refused(by_name, tmp_path):
    """W_dec rows of 3e38 are finite, but the reconstruction of this file from them is not."""
    base = by_name["embedded"]
    p = fuzz.parse(base.data)
    a = fuzz.model_arrays(p)
    a["W_dec"] = np.full_like(a["W_dec"], 3e38)
    fuzz.set_model(p, a)  # fingerprints recomputed: a valid model, whose output would be Inf
    refused(fuzz.build(p), base, tmp_path, "overflows float32", model_attack=True)


# -- 9. the encoder refuses what it cannot code ----------------------------------------------------------

@pytest.mark.parametrize(("value", "dtype"), [(1e30, np.float32), (2**62, np.int64), (3e38, np.float32),
                                              (-3e38, np.float32)])
def test_encoder_refuses_inputs_it_cannot_code(value, dtype, tmp_path):
    codec, _ = fuzz.codecs()
    x = np.zeros((30, 8), dtype)
    x[23] = value
    for chunk in (10, 64):
        out = tmp_path / "x.mdlc"
        with pytest.raises(CodecError, match="the input: row 23 ") as e:
            encode_file(codec, x, out, chunk_size=chunk, what="the input")
        assert not out.exists() and list(tmp_path.iterdir()) == []
        assert "cannot be coded" in str(e.value) or "beyond" in str(e.value) or "overflow" in str(e.value)
    with pytest.raises(CodecError, match="row 23 "):
        codec.encode(x.astype(np.float32), chunk_size=10)
    constant = np.full((5, 8), 3e38, np.float32)  # coded to about 0.16 before
    with pytest.raises(CodecError):
        codec.encode(constant)


def test_encoder_refuses_a_chunk_size_beyond_the_format(tmp_path):
    codec, _ = fuzz.codecs()
    with pytest.raises(CodecError, match="chunk_size"):
        codec.encode(np.zeros((3, 8), np.float32), chunk_size=MAX_CHUNK_ROWS + 1)
    with pytest.raises(CodecError, match="chunk_size"):
        encode_file(codec, np.zeros((3, 8), np.float32), tmp_path / "x.mdlc", chunk_size=0)
    assert list(tmp_path.iterdir()) == []


# -- the footer: random access ------------------------------------------------------------------------------

def test_chunk_index_gives_every_chunk_and_checks_its_binding(by_name):
    base = by_name["forest-embedded"]
    reader = Reader.open(io.BytesIO(base.data))
    index = reader.chunk_index()
    h = reader.header
    assert [e.n_rows for e in index] == [h.chunk_rows(i) for i in range(h.n_chunks)]
    assert [e.first_row for e in index] == list(range(0, h.n, h.chunk_size))
    codec = Codec.from_model_section(reader.model_bytes)
    rows = [codec.reconstruct(codec.chunk_coder.decode(w, n)) for n, w in
            (reader.read_chunk(i, e) for i, e in enumerate(index))]
    np.testing.assert_array_equal(np.concatenate(rows), base.output)
    with pytest.raises(CodecError, match="chunk 2 of"):
        reader.read_chunk(1, index[0])  # chunk 1's bytes read as chunk 2
    assert json.loads(fuzz.parse(base.data).header)["file_id"] == h.file_id
