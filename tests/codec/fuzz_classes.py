"""Issue 29's attacks on files, beside tests/codec/fuzz.py's (shared by the tests and
bench/fuzz_codec.py): each class crafts valid-looking files with every CRC right.

  2  coded decoder rows (``coded_rows_attacks``): sections the writer never writes (an empty word
     stream, counts that wrap int64, the rows at 2L levels with the scale doubled, a row short of its
     levels, a -0.0 scale, a word more) with the header's fingerprint of what they decode to, and
     a bomb: many canonical coded weights in few bytes under a fingerprint they do not have
  3  slow legitimate files (``slow_files``): thousands of one-row chunks under a 64-deep forest
  4  random access against the whole index (``index_attacks``): a footer entry at a hidden chunk
     placed after the real one, so that the entry before spans two real chunks
  5  decompression bombs by row count (``row_bombs``): 100 KB claiming 2**20 rows of width 8,192
     (32 GiB of activations), or 4.2 x 10**8 empty rows (3.4 GB of row pointers)

Every attack here but the slow files must be refused (``MUST_REFUSE``): a file that decodes, even to
the original's output, is a file the writer never writes (2), rows of another file (4) or an output
beyond the stated expansion (5).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import constriction
import numpy as np
import safetensors.numpy

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser
from mdlcodec.codec.format.container import Header, Writer
from mdlcodec.codec.rate.decoder_code import CodedRows
from tests.codec import fuzz

# -- 2: coded decoder rows ---------------------------------------------------------------------------


def coded_base() -> fuzz.Base:
    """The golden model with its decoder rows coded at 8 levels a side, its file self-contained."""
    flat, _ = fuzz.codecs()
    codec = Codec(flat.decoder.with_coded_rows(8), flat.quantiser, flat.entropy_model, flat.encoder)
    x = np.load(fuzz.GOLDEN / "input.npy")
    data = codec.encode(x, chunk_size=10, embed_model=True, file_id="c0" * 16)
    return fuzz.Base("coded-embedded", data, codec, True, codec.decode(data))


def _fingerprint(W: np.ndarray, a: dict) -> str:
    return Decoder(W.astype(np.float32), a["b_dec"], float(a["input_scale"][0])).fingerprint()


def _with_rows(data: bytes, a: dict, W: np.ndarray | None) -> bytes:
    """data with its model section's arrays ``a``, the header naming the fingerprint of ``W`` (what the
    crafted rows decode to, as the attacker computes it; None: the header's as it is)."""
    p = fuzz.parse(data)
    p.model = safetensors.numpy.save(a)
    if W is not None:
        p.set_header(sae_fingerprint=_fingerprint(W, a))
    return fuzz.build(p)


def _stream(sym: np.ndarray, counts: np.ndarray) -> np.ndarray:
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(sym.astype(np.int32), constriction.stream.model.Categorical(counts.astype(np.float64) + 1.0,
                                                                                      perfect=False))
    return coder.get_compressed().astype(np.uint32)


def coded_rows_attacks(base: fuzz.Base) -> list[tuple[str, bytes]]:
    """(name, bytes) of class 2 on the coded base (``coded_base``)."""
    a = fuzz.model_arrays(fuzz.parse(base.data))
    coded = base.codec.decoder.coded
    L, scale, d_in = coded.levels, coded.row_scale, coded.d_in
    W = base.codec.decoder.W_dec
    q = np.rint(W / (scale / np.float32(L))[:, None]).astype(np.int64)
    assert np.array_equal((q.astype(np.float32) * (scale / np.float32(L))[:, None]).astype(np.float32), W)
    out = []

    empty = {**a, "W_dec_words": np.zeros(0, np.uint32)}  # decodes every weight to symbol 0: -scale
    out.append(("coded rows: an empty word stream", _with_rows(base.data, empty, -np.repeat(scale[:, None], d_in, 1))))

    n = W.size
    wrap = {**a, "W_dec_levels": np.array([2], np.int64), "W_dec_counts": np.array([2**62] * 4 + [n], np.int64)}
    out.append(("coded rows: counts [2^62 x 4, n] wrapping int64", _with_rows(base.data, wrap, None)))

    sym2 = (q + 2 * L).ravel()  # the same integers at 2L levels: the same weights
    counts2 = np.bincount(sym2, minlength=4 * L + 1).astype(np.int64)
    double = {**a, "W_dec_levels": np.array([2 * L], np.int64), "W_dec_row_scale": (scale * 2).astype(np.float32),
              "W_dec_counts": counts2, "W_dec_words": _stream(sym2, counts2)}
    out.append(("coded rows: 2L levels, scale doubled (the same weights)", _with_rows(base.data, double, W)))

    q_short = q.copy()
    q_short[0] = np.clip(q_short[0], -(L - 1), L - 1)  # row 0 never reaches its scale
    sym = (q_short + L).ravel()
    counts = np.bincount(sym, minlength=2 * L + 1).astype(np.int64)
    W_short = (q_short.astype(np.float32) * (scale / np.float32(L))[:, None]).astype(np.float32)
    short = {**a, "W_dec_counts": counts, "W_dec_words": _stream(sym, counts)}
    out.append(("coded rows: a row short of its scale's levels", _with_rows(base.data, short, W_short)))

    q_zero = q.copy()
    q_zero[0] = 0
    sym = (q_zero + L).ravel()
    counts = np.bincount(sym, minlength=2 * L + 1).astype(np.int64)
    neg = scale.copy()
    neg[0] = -0.0
    W_neg = (q_zero.astype(np.float32) * (neg / np.float32(L))[:, None]).astype(np.float32)
    negative = {**a, "W_dec_row_scale": neg, "W_dec_counts": counts, "W_dec_words": _stream(sym, counts)}
    out.append(("coded rows: a row of scale -0.0", _with_rows(base.data, negative, W_neg)))

    more = {**a, "W_dec_words": np.concatenate([np.ones(1, np.uint32), a["W_dec_words"]])}
    out.append(("coded rows: a word before the stream", _with_rows(base.data, more, W)))

    out.append(("coded rows: a fingerprint the rows do not have", _with_rows(base.data, a, W + np.float32(1))))
    return out


def coded_rows_bomb(d_sae: int, d_in: int, density: float = 1e-3, seed: int = 0, block: int = 1 << 20) -> bytes:
    """A self-contained file of one empty row whose model section holds d_sae x d_in canonical coded
    weights at 1 level a side (each row one +1, the rest 0 but a ``density`` of +-1: about 0.01 bits a
    weight, above decoder_code's MIN_BITS_PER_WEIGHT), made block by block (memory: one block), and a
    header naming another decoder's fingerprint: what a decoder must refuse without holding the rows."""
    n, L = d_sae * d_in, 1

    def block_syms(s: int) -> np.ndarray:
        e = min(s + block, n)
        r = np.random.default_rng([seed, s])
        sym = np.where(r.random(e - s) < density, np.where(r.random(e - s) < 0.5, 0, 2), 1)
        at = np.arange(s, e)
        sym[at % d_in == (at // d_in) % d_in] = 2  # every row reaches its scale: canonical
        return sym.astype(np.int32)

    counts = np.zeros(2 * L + 1, np.int64)
    for s in range(0, n, block):
        counts += np.bincount(block_syms(s), minlength=2 * L + 1)
    model = constriction.stream.model.Categorical(counts.astype(np.float64) + 1.0, perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    for s in reversed(range(0, n, block)):
        coder.encode_reverse(block_syms(s), model)
    rows = CodedRows(L, np.ones(d_sae, np.float32), counts, coder.get_compressed().astype(np.uint32), d_in)
    zeros = np.zeros(d_sae, np.int64)
    tables = EntropyModel(1, zeros, np.ones(d_sae, np.int32), np.arange(d_sae + 1, dtype=np.int64), zeros.copy(),
                          zeros.copy())
    q = Quantiser(np.full(d_sae, 0.05, np.float32))
    arrays = {**rows.to_arrays(), "b_dec": np.zeros(d_in, np.float32), "input_scale": np.ones(1, np.float32),
              "step": q.step, **tables.to_arrays()}
    tables_fp = hashlib.sha256(q.step.astype("<f4").tobytes())  # as Codec.entropy_fingerprint names them
    tables_fp.update(tables.fingerprint().encode())
    header = Header(n=1, d_in=d_in, d_sae=d_sae, chunk_size=1, n_chunks=1, sae_fingerprint="0" * 32,
                    entropy_model_fingerprint=tables_fp.hexdigest()[:32], mdlcodec="bomb", file_id="e" * 32)
    from mdlcodec.codec.format.bitstream import ChunkCoder
    from mdlcodec.codec.sparse import SparseCodes

    f = io.BytesIO()
    w = Writer(f, header, safetensors.numpy.save(arrays))
    w.write_chunk(1, ChunkCoder(tables).encode(SparseCodes(np.zeros(2, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), d_sae)))
    w.finish()
    return f.getvalue()


# -- 4: random access against the whole index --------------------------------------------------------


def index_attacks(base: fuzz.Base) -> list[tuple[str, bytes]]:
    """A footer entry at a hidden chunk placed after the real chunk it replaces (C0, C1, H1, C2, ...,
    the footer naming C0, H1, C2, ...: entry 1's span holds C0 and C1, entry 2's exactly H1, each CRC
    right): a full decode refuses the file; random access of chunk 2's rows must too."""
    p = fuzz.parse(base.data)
    if p.version < 2 or len(p.chunks) < 3:
        return []
    fid = fuzz.file_id_of(p.header)
    other = base.codec.encode(np.random.default_rng(5).normal(size=(p.chunks[1].n_rows, base.codec.decoder.d_in))
                              .astype(np.float32), chunk_size=p.chunks[1].n_rows)
    hidden = replace(fuzz.parse(other).chunks[0], bind=(fid, 1))
    bound = [replace(c, bind=(fid, i)) for i, c in enumerate(p.chunks)]
    p.chunks = [bound[0], bound[1], hidden] + bound[2:]
    pos = len(fuzz.build(replace(p, chunks=[], footer=False)))
    index = []
    for c in p.chunks:
        index.append((pos, c.n_rows))
        pos += 12 + len(c.words)
    p.index = [index[0]] + index[2:]
    return [("index: a footer entry at a hidden chunk after the real one", fuzz.build(p))]


# -- 5: decompression bombs by row count ----------------------------------------------------------


def row_bombs() -> list[tuple[str, bytes]]:
    """A 100 KB file claiming 2**20 rows of width 8,192 (32 GiB of float32), and a 10 KB file of
    400 chunks of 2**20 empty rows (4.2 x 10**8 rows: 3.4 GB of row pointers as latents)."""
    return [("rows: 2^20 rows of width 8,192 in 100 KB", fuzz.bomb(fuzz.free_codec(8192, 2, False), 1 << 20, 1)),
            ("rows: 4.2e8 empty rows in 10 KB", fuzz.bomb(fuzz.free_codec(8, 2, False), 1 << 20, 400))]


MUST_REFUSE = "must-refuse"


# -- 3: slow legitimate files ------------------------------------------------------------------------


def slow_file(rows: int = 10_000, depth: int = 64, seed: int = 0) -> fuzz.Base:
    """A valid self-contained file of ``rows`` one-row chunks under a ``depth``-deep feature forest (one
    chain, "conditional": a child coded only where its parent is active), each row a few active
    features at the chain's top: what a chunk needs must be built once per file, not per chunk."""
    from mdlcodec.codec.entropy.hierarchy import Hierarchy
    from mdlcodec.codec.sparse import SparseCodes

    rng = np.random.default_rng(seed)
    d_sae, d_in = depth, 8
    active = np.cumprod(rng.random((4 * rows, d_sae)) < 0.5, axis=1).astype(np.int64)  # a prefix of the chain
    fit = SparseCodes.from_dense(active)
    parents = np.arange(d_sae, dtype=np.int64) - 1
    model = EntropyModel.fit(fit).with_hierarchy(Hierarchy.count(fit, parents, "conditional"))
    decoder = Decoder(rng.normal(size=(d_sae, d_in)).astype(np.float32), np.zeros(d_in, np.float32), 1.0)
    codec = Codec(decoder, Quantiser(np.full(d_sae, 0.5, np.float32)), model)
    codes = SparseCodes.from_dense(active[:rows])
    header = codec.header(rows, 1, "5" * 32)
    f = io.BytesIO()
    w = Writer(f, header, codec.model_section())
    from mdlcodec.codec.parallel import slice_codes

    for i in range(rows):
        w.write_chunk(1, codec.codes_words(slice_codes(codes, i, i + 1), i))
    w.finish()
    data = f.getvalue()
    return fuzz.Base(f"slow: {rows:,} one-row chunks, {depth}-deep forest", data, codec, True,
                     codec.reconstruct(codes))
