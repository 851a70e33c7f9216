"""Structure-aware fuzzing of the decoder and the encoder (issue 12; the machinery is tests/codec/fuzz.py,
bench/fuzz_codec.py runs it at volume). Every changed file, CRCs recomputed, must decode exactly,
be refused with the project's typed error, or be another valid file (what the encoder writes), in
time and within the stated memory; every file the encoder writes must decode to what it coded."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdlcodec.codec import Codec, encode_file
from mdlcodec.codec.format.container import Reader
from mdlcodec.core.errors import CodecError
from tests.codec import fuzz

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True)
BASES = [b.name for b in fuzz.bases()]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check(data: bytes, base: fuzz.Base, tmp, paths=("codec", "decode", "info")) -> dict[str, str]:
    outcome = fuzz.run_case(data, base, tmp, time_limit=10.0, paths=paths)
    assert all(v in fuzz.EXPECTED for v in outcome.values()), outcome
    return outcome


def _base(name: str) -> fuzz.Base:
    return next(b for b in fuzz.bases() if b.name == name)


@settings(FUZZ, max_examples=250)
@given(seed=st.integers(0, 2**63 - 1), name=st.sampled_from(BASES))
def test_random_mutations_with_crcs_recomputed(seed, name, tmp):
    base = _base(name)
    check(fuzz.mutate(base.data, np.random.default_rng(seed)), base, tmp)


def test_structured_attacks_sample(tmp):
    """Every eighth structured attack (the bench runs them all): header fields, claimed sizes, chunk
    layout and framing, model-section arrays."""
    outcomes = {}
    for base, name, data in fuzz.attacks()[::8]:
        outcomes[(base, name)] = check(data, _base(base), tmp, paths=("codec", "info"))
    assert len(outcomes) > 150


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=40),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@settings(FUZZ, max_examples=150)
@given(name=st.sampled_from(["referenced", "embedded", "v1-referenced", "v2-embedded", "rows-of-one"]),
       key=st.sampled_from(["n", "d_in", "d_sae", "chunk_size", "n_chunks", "dtype", "quantiser", "sae_fingerprint",
                            "entropy_model_fingerprint", "mdlcodec", "file_id", "other"]),
       value=_JSON)
def test_header_fields(name, key, value, tmp):
    base = _base(name)
    p = fuzz.parse(base.data)
    fields = p.header_fields()
    fields[key] = value
    p.header = json.dumps(fields).encode()  # NaN and Infinity as Python writes them
    outcome = check(fuzz.build(p), base, tmp, paths=("codec", "info"))
    if outcome["codec"] != "refused":
        assert key == "mdlcodec" or fields == fuzz.parse(base.data).header_fields()


@settings(FUZZ, max_examples=100)
@given(name=st.sampled_from(["rows-of-one", "referenced", "forest-embedded"]), data=st.data())
def test_chunk_framing(name, data, tmp):
    """Chunks reordered, repeated or dropped, each keeping the CRC of its old place or given one for
    its new place, with lying row and word counts."""
    base = _base(name)
    p = fuzz.parse(base.data)
    fid = fuzz.file_id_of(p.header)
    k = len(p.chunks)
    order = data.draw(st.lists(st.integers(0, k - 1), min_size=max(k - 2, 0), max_size=k + 2))
    chunks = []
    for i in order:
        c = p.chunks[i]
        if data.draw(st.booleans()):
            c = fuzz.replace(c, bind=(fid, i))  # as written at place i
        if data.draw(st.integers(0, 9)) == 0:
            c = fuzz.replace(c, n_rows=data.draw(st.sampled_from([0, c.n_rows + 1, 2**20, 2**32 - 1])))
        if data.draw(st.integers(0, 9)) == 0:
            c = fuzz.replace(c, n_words=data.draw(st.sampled_from([0, len(c.words) // 4 + 1, 2**30])))
        chunks.append(c)
    p.chunks = chunks
    outcome = check(fuzz.build(p), base, tmp)
    if order != list(range(k)) and any(c.bind for c in chunks):
        moved = [pos for pos, i in enumerate(order) if pos != i and chunks[pos].bind is not None]
        if moved:
            assert set(outcome.values()) == {"refused"}, (order, outcome)


_DTYPES = [np.float32, np.float64, np.int64, np.int32, np.int8, np.bool_, np.uint8, np.float16]


@settings(FUZZ, max_examples=150)
@given(name=st.sampled_from(["embedded", "forest-embedded"]), data=st.data())
def test_model_section_arrays(name, data, tmp):
    """An array of the model section replaced by one of another dtype, rank, shape or values (the
    header's fingerprints recomputed where the section is still a valid model)."""
    base = _base(name)
    p = fuzz.parse(base.data)
    a = fuzz.model_arrays(p)
    key = data.draw(st.sampled_from(sorted(a)))
    old = a[key]
    dtype = data.draw(st.sampled_from([old.dtype.type] * 4 + _DTYPES))
    shape = data.draw(st.sampled_from([old.shape] * 4 + [(), (0,), (1,), (old.size + 1,), (1, old.size), (2, 2, 2)]))
    if data.draw(st.booleans()) and shape == old.shape:
        new = old.astype(dtype).copy()
        flat = new.reshape(-1)
        if flat.size:
            j = data.draw(st.integers(0, flat.size - 1))
            value = data.draw(st.sampled_from([0, 1, -1, 2**31 - 1, 2**40, np.nan, np.inf, -np.inf, 1e38]))
            try:
                flat[j] = value
            except (OverflowError, ValueError):
                pass
    else:
        new = data.draw(hnp.arrays(dtype, shape))
    a[key] = new
    fuzz.set_model(p, a)
    check(fuzz.build(p), base, tmp, paths=("decode", "info"))


@settings(FUZZ, max_examples=80)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(0, 30), st.just(8)),
                    elements=st.one_of(st.floats(width=32), st.sampled_from([0.0, 1e30, -1e30, 3e38]))),
       chunk=st.integers(1, 40), embed=st.booleans(), forest=st.booleans())
def test_encoder_writes_only_what_it_decodes(x, chunk, embed, forest, tmp):
    """Whatever the input, encode refuses it with a CodecError or writes a file that decodes to
    exactly its coded latents, with finite values."""
    codec = fuzz.codecs()[int(forest)]
    try:
        data = codec.encode(x, chunk_size=chunk, embed_model=embed)
    except CodecError:
        return
    decoder = Codec.from_model_section(Reader.open(__import__("io").BytesIO(data)).model_bytes) if embed else codec
    assert decoder.decode_latents(data) == codec.latents(x, chunk_size=chunk)
    out = decoder.decode(data)
    assert out.shape == x.shape and np.isfinite(out).all()


@settings(FUZZ, max_examples=30)
@given(values=st.lists(st.sampled_from([np.nan, np.inf, 1e30, 2.0**62, 3e38, 1.0]), min_size=1, max_size=3),
       rows=st.lists(st.integers(0, 59), min_size=1, max_size=3), chunk=st.integers(1, 25),
       dtype=st.sampled_from([np.float32, np.float64, np.int64]))
def test_encoder_names_the_file_row_it_cannot_code(values, rows, chunk, dtype, tmp):
    codec = fuzz.codecs()[0]
    x = np.zeros((60, 8), np.float64)
    for v, r in zip(values, rows):
        x[r, r % 8] = v
    if dtype == np.int64:
        x = np.clip(np.nan_to_num(x, nan=2.0**62, posinf=2.0**62), -2.0**62, 2.0**62).astype(np.int64)
    else:
        x = x.astype(dtype)
    bad = [r for r in range(60) if not np.all(np.abs(x[r].astype(np.float64)) < 1e15)]
    out = tmp / "enc.mdlc"
    out.unlink(missing_ok=True)
    try:
        encode_file(codec, x, out, chunk_size=chunk)
    except CodecError as e:  # a row of the first chunk that holds one (NaN is found before the others)
        row = int(str(e).split("row ")[1].split()[0].rstrip(","))
        assert row in bad and row // chunk == min(bad) // chunk, (str(e), bad)
        assert not out.exists()
        return
    assert not bad, "coded a row the format cannot hold"
