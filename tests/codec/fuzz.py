"""Structure-aware fuzzing of .mdlc files (issue 12), shared by tests/codec/test_fuzz.py (a few
hundred cases under hypothesis) and bench/fuzz_codec.py (100,000 and more).

Files are made by the real encoder from the golden model (tests/golden), taken apart (``parse``),
changed (header fields, chunk framing, model-section arrays, or random bytes), and put together with
every CRC recomputed (``build``, ``refix``), as an attacker or a buggy writer would. Each case is
decoded through ``Codec.decode``, ``decode_file`` and ``inspect_file`` (``run_case``), and each
outcome is one of:

  identical      decoded to the original's output (info: the same figures)
  refused        a MdlcodecError (one line at the CLI)
  valid-other    decoded to another output, and the changed file is exactly what the encoder writes
                 for what it decoded to (its streams re-encode to the same bytes): a valid file
  wrong          decoded to another output that the encoder would not have written: silently wrong
  unexpected:T   any other exception T (a traceback at the CLI)
  hang           over the time limit
  memory         traced memory (numpy's and Python's) over ``memory_bound``

so that the first three are expected and the others are failures.
"""

from __future__ import annotations

import io
import json
import signal
import struct
import time
import tracemalloc
import zlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import safetensors.numpy

from mdlcodec.codec import Codec, decode_file, inspect_file
from mdlcodec.codec.entropy.hierarchy import Hierarchy
from mdlcodec.codec.files import decode_range
from mdlcodec.codec.format.container import FOOTER_TAG, MAGIC, MAX_CHUNK_LATENTS, Reader
from mdlcodec.codec.parallel import SLICE_BYTES
from mdlcodec.core.errors import MdlcodecError

GOLDEN = Path(__file__).parents[1] / "golden"
HIERARCHY = [-1, 0, 0, 1, -1, 4, 4, 5, -1, 8, 9, 10, -1, 12, 12, 13]
EXPECTED = ("identical", "refused", "valid-other")

# -- the files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A valid file, the codec that decodes it (Codec.decode), and what decoding it gives."""

    name: str
    data: bytes
    codec: Codec
    embedded: bool
    output: np.ndarray = field(repr=False)


@lru_cache(maxsize=1)
def codecs() -> tuple[Codec, Codec]:
    """The golden model's codec, flat and under the golden forest (kind "conditional")."""
    flat = Codec.load(GOLDEN / "model")
    rng = np.random.default_rng(1234)
    fit_x = rng.normal(size=(200, 8)).astype(np.float32)
    forest = flat.with_hierarchy(Hierarchy.count(flat.latents(fit_x), np.array(HIERARCHY), "conditional"))
    return flat, forest


@lru_cache(maxsize=1)
def bases() -> tuple[Base, ...]:
    """The files every attack starts from (format version 3): referenced and self-contained, flat and
    forest, several chunk sizes, an empty file; and the golden files of versions 1 and 2."""
    flat, forest = codecs()
    x = np.load(GOLDEN / "input.npy")
    x40 = np.random.default_rng(7).normal(size=(40, 8)).astype(np.float32)
    made = [("referenced", flat, x, 10, False), ("embedded", flat, x, 10, True),
            ("forest-embedded", forest, x40, 7, True), ("forest-referenced", forest, x40, 16, False),
            ("rows-of-one", flat, x[:6], 1, False), ("empty", flat, x[:0], 4, True),
            ("one-chunk", flat, x40, 64, True)]
    out = []
    for name, codec, rows, chunk, embed in made:
        data = codec.encode(rows, chunk_size=chunk, embed_model=embed, file_id=f"{len(out):02x}" * 16)
        out.append(Base(name, data, codec, embed, codec.decode(data)))
    for name in ("referenced", "embedded"):
        for v, file in ((1, f"{name}.mdlc"), (2, f"{name}_v2.mdlc")):
            data = (GOLDEN / file).read_bytes()
            out.append(Base(f"v{v}-{name}", data, flat, name == "embedded", flat.decode(data)))
    return tuple(out)


# -- taking a file apart and putting it together ---------------------------------------------------


@dataclass
class Chunk:
    n_rows: int
    words: bytes
    n_words: int | None = None  # a lie in the n_words field (None: the truth)
    bind: tuple[bytes, int] | None = None  # (file id, sequence number) its CRC covers; None: its place here


@dataclass
class Parts:
    version: int
    flags: int
    header: bytes  # the JSON
    model: bytes | None
    chunks: list[Chunk]
    index: list[tuple[int, int]] | None = None  # footer entries (None: the true ones)
    footer: bool = True  # version 2: write the footer
    tail: bytes = b""  # bytes after the end
    header_length: int | None = None  # lies in length fields (None: the truth)
    model_length: int | None = None

    def header_fields(self) -> dict:
        return json.loads(self.header)

    def set_header(self, **changes) -> None:
        h = self.header_fields()
        h.update(changes)
        self.header = json.dumps(h, sort_keys=True, separators=(",", ":")).encode()


def parse(data: bytes) -> Parts:
    """The parts of a valid file (version 1 or 2)."""
    version, flags, hlen = struct.unpack_from("<HHI", data, 8)
    header = data[16:16 + hlen]
    pos, model = 20 + hlen, None
    if flags & 1:
        (mlen,) = struct.unpack_from("<Q", data, pos)
        model, pos = data[pos + 8:pos + 8 + mlen], pos + 12 + mlen
    n_chunks = json.loads(header)["n_chunks"]
    chunks = []
    for _ in range(n_chunks):
        n_rows, n_words = struct.unpack_from("<II", data, pos)
        chunks.append(Chunk(n_rows, data[pos + 8:pos + 8 + 4 * n_words]))
        pos += 12 + 4 * n_words
    return Parts(version, flags, header, model, chunks)


def file_id_of(header: bytes) -> bytes:
    """The 16 bytes a version-2 header names (zeros if it names none readable)."""
    try:
        return bytes.fromhex(json.loads(header)["file_id"])[:16].ljust(16, b"\0")
    except Exception:  # noqa: BLE001 - any damage: no id
        return bytes(16)


def _chunk_crc(file_id: bytes | None, seq: int, head: bytes, words: bytes) -> int:
    crc = zlib.crc32(file_id + struct.pack("<I", seq & 0xFFFFFFFF)) if file_id is not None else 0
    return zlib.crc32(words, zlib.crc32(head, crc))


def build(p: Parts) -> bytes:
    """The bytes of p with every CRC right (over the given, possibly lying, fields)."""
    fid = file_id_of(p.header) if p.version >= 2 else None
    head = MAGIC + struct.pack("<HHI", p.version, p.flags, len(p.header) if p.header_length is None else p.header_length)
    out = bytearray(head + p.header)
    out += struct.pack("<I", zlib.crc32(out))
    if p.model is not None:
        sec = struct.pack("<Q", len(p.model) if p.model_length is None else p.model_length) + p.model
        out += sec + struct.pack("<I", zlib.crc32(sec))
    index = []
    for i, c in enumerate(p.chunks):
        head = struct.pack("<II", c.n_rows, len(c.words) // 4 if c.n_words is None else c.n_words)
        bind_id, seq = c.bind if c.bind is not None else (fid, i)
        index.append((len(out), c.n_rows))
        out += head + c.words + struct.pack("<I", _chunk_crc(bind_id if p.version >= 2 else None, seq, head, c.words))
    if p.version >= 2 and p.footer:
        body = FOOTER_TAG + b"".join(struct.pack("<QI", o, r) for o, r in (p.index if p.index is not None else index))
        body += struct.pack("<I", zlib.crc32(out))
        out += body + struct.pack("<I", zlib.crc32(body, zlib.crc32(fid)))
    return bytes(out + p.tail)


def refix(data: bytes, fix_index: bool = False) -> bytes:
    """Recompute every CRC of a (changed, possibly broken) file where its framing can be followed,
    as the decoder would follow it; with fix_index also the footer's entries."""
    b = bytearray(data)
    if len(b) < 20:
        return bytes(b)
    version, flags, hlen = struct.unpack_from("<HHI", b, 8)
    if 20 + hlen > len(b):
        return bytes(b)
    header = bytes(b[16:16 + hlen])
    struct.pack_into("<I", b, 16 + hlen, zlib.crc32(b[:16 + hlen]))
    fid = file_id_of(header) if version >= 2 else None
    try:
        n_chunks = json.loads(header).get("n_chunks")
        n_chunks = n_chunks if isinstance(n_chunks, int) and 0 <= n_chunks < 1 << 20 else None
    except Exception:  # noqa: BLE001 - a damaged header: follow the chunks as far as they go
        n_chunks = None
    pos = 20 + hlen
    if flags & 1:
        if pos + 8 > len(b):
            return bytes(b)
        (mlen,) = struct.unpack_from("<Q", b, pos)
        if pos + 12 + mlen > len(b):
            return bytes(b)
        struct.pack_into("<I", b, pos + 8 + mlen, zlib.crc32(b[pos:pos + 8 + mlen]))
        pos += 12 + mlen
    footer = 16 + 12 * n_chunks if version >= 2 and n_chunks is not None else 0
    index, i = [], 0
    while (n_chunks is None or i < n_chunks) and pos + 12 <= len(b) - footer:
        n_rows, n_words = struct.unpack_from("<II", b, pos)
        end = pos + 8 + 4 * n_words
        if end + 4 > len(b):
            break
        struct.pack_into("<I", b, end, _chunk_crc(fid, i, bytes(b[pos:pos + 8]), bytes(b[pos + 8:end])))
        index.append((pos, n_rows))
        pos, i = end + 4, i + 1
    if version >= 2 and n_chunks is not None and pos + footer <= len(b) and footer:
        if fix_index and len(index) == n_chunks:
            b[pos:pos + 8 + 12 * n_chunks] = FOOTER_TAG + b"".join(struct.pack("<QI", o, r) for o, r in index)
        struct.pack_into("<I", b, pos + footer - 8, zlib.crc32(b[:pos]))
        struct.pack_into("<I", b, pos + footer - 4, zlib.crc32(b[pos:pos + footer - 4], zlib.crc32(fid)))
    return bytes(b)


def model_arrays(p: Parts) -> dict[str, np.ndarray]:
    return dict(safetensors.numpy.load(p.model))


def set_model(p: Parts, arrays: dict[str, np.ndarray], fingerprints: bool = True) -> None:
    """p's model section replaced by these arrays; with ``fingerprints`` the header's fingerprints are
    recomputed where the new section is a valid model, so that checks behind them are reached."""
    p.model = safetensors.numpy.save(arrays)
    if fingerprints:
        try:
            own = Codec.from_model_section(p.model)
        except MdlcodecError:
            return
        p.set_header(sae_fingerprint=own.decoder.fingerprint(), entropy_model_fingerprint=own.entropy_fingerprint)


# -- random mutations --------------------------------------------------------------------------------

_U32 = [0, 1, 2, 3, 255, 1 << 16, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 10**9]
_U64 = [0, 1, (1 << 31) - 1, 1 << 32, 1 << 39, (1 << 63) - 1, (1 << 64) - 1]
_TOKENS = [b"1.5", b"-1", b"1e999", b"null", b'"1"', b"[]", b"{}", b"true", b"18446744073709551616",
           b"0", b"9007199254740993", b"[" * 50 + b"]" * 50, b"NaN", b"Infinity", b"2147483647"]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """1 to 3 random changes: bits, bytes, length-sized integers, insertions, deletions, duplicated
    ranges, a truncation, or a header JSON value replaced by an odd token."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 9))
        n = len(b)
        at = int(rng.integers(0, max(n, 1)))
        if op == 0 and n:
            b[at] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and n:
            b[at] = int(rng.choice([0, 0xFF, int(rng.integers(0, 256))]))
        elif op == 2 and n >= 4:
            at = min(at, n - 4)
            struct.pack_into("<I", b, at, _U32[int(rng.integers(len(_U32)))] if rng.random() < 0.7
                             else (struct.unpack_from("<I", b, at)[0] + int(rng.integers(-2, 3))) & 0xFFFFFFFF)
        elif op == 3 and n >= 8:
            at = min(at, n - 8)
            struct.pack_into("<Q", b, at, _U64[int(rng.integers(len(_U64)))])
        elif op == 4:
            b[at:at] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif op == 5 and n:
            del b[at:at + int(rng.integers(1, 9))]
        elif op == 6 and n:
            size = int(rng.integers(1, 64))
            b[at:at] = b[at:at + size]
        elif op == 7 and n:
            del b[at:]
        elif op == 8 and n > 20:
            hlen = struct.unpack_from("<I", b, 12)[0]
            body = bytes(b[16:16 + hlen])
            colons = [i for i, c in enumerate(body) if c == ord(":")]
            if colons and 16 + hlen <= n:
                c = colons[int(rng.integers(0, len(colons)))] + 1
                end = c
                while end < len(body) and body[end] not in b",}":
                    end += 1
                body = body[:c] + _TOKENS[int(rng.integers(0, len(_TOKENS)))] + body[end:]
                b[12:20 + hlen] = struct.pack("<I", len(body)) + body + b[16 + hlen:20 + hlen]
    return refix(bytes(b), fix_index=bool(rng.random() < 0.5))


# -- structured attacks ------------------------------------------------------------------------------

_BAD_INTS = [1.5, "1", None, -1, 2**64, 2**63 - 1, 2**31 - 1, 10**9, True, [], {}, 0, 1e300, 10**400]
_BAD_TEXT = [None, 1, "", "X" * 32, "0" * 31, "0" * 33, "A" * 32, ["0" * 32], "x" * 100]


def _json_raw(fields: dict, key: str, raw: bytes) -> bytes:
    """The header JSON with fields[key]'s value written as raw bytes (tokens json cannot write)."""
    body = json.dumps({**fields, key: 0}, sort_keys=True, separators=(",", ":")).encode()
    return body.replace(f'"{key}":0'.encode(), f'"{key}":'.encode() + raw, 1)


def attacks() -> list[tuple[str, str, bytes]]:
    """(base name, attack name, bytes): the structured attacks on header, layout and model section."""
    out: list[tuple[str, str, bytes]] = []
    by_name = {b.name: b for b in bases()}

    def add(base: str, name: str, p: Parts) -> None:
        out.append((base, name, build(p)))

    for base in ("referenced", "embedded", "v1-referenced", "v2-referenced"):
        fields = parse(by_name[base].data).header_fields()
        ints = ("n", "d_in", "d_sae", "chunk_size", "n_chunks")
        for key in ints:
            for v in _BAD_INTS:
                p = parse(by_name[base].data)
                p.set_header(**{key: v})
                add(base, f"header {key}={json.dumps(v)[:20]}", p)
            for raw in (b"Infinity", b"NaN", b"-Infinity", b"1e999", b"[" * 5000 + b"]" * 5000, b"1.0", b"01"):
                p = parse(by_name[base].data)
                p.header = _json_raw(fields, key, raw)
                add(base, f"header {key}=raw {raw[:12]!r}", p)
        for key in ("dtype", "quantiser", "sae_fingerprint", "entropy_model_fingerprint", "mdlcodec", "file_id"):
            for v in _BAD_TEXT:
                p = parse(by_name[base].data)
                p.set_header(**{key: v})
                add(base, f"header {key}={json.dumps(v)[:20]}", p)
        for key in list(fields):
            p = parse(by_name[base].data)
            h = p.header_fields()
            del h[key]
            p.header = json.dumps(h).encode()
            add(base, f"header without {key}", p)
        for raw, what in [(b"[" * 100_000 + b"]" * 100_000, "100,000 nested arrays"), (b"[]", "a list"),
                          (b'"x"', "a string"), (b"\xff\xfe{}", "not UTF-8"), (b"", "empty"),
                          (parse(by_name[base].data).header[:-1] + b',"n":1}', "a duplicate key"),
                          (parse(by_name[base].data).header[:-1] + b',"extra":1}', "an extra key"),
                          (b" " * 70_000 + parse(by_name[base].data).header, "70,000 bytes long")]:
            p = parse(by_name[base].data)
            p.header = raw
            add(base, f"header: {what}", p)
        # claimed sizes, with the chunk count kept consistent so that only the size is at fault
        for n, size in [(2**31 - 1, 4096), (2**63 - 1, 4096), (2**48, 2**20), (10**9, 10**9), (2**31 - 1, 1),
                        (0, 1), (25, 2**20 + 1)]:
            p = parse(by_name[base].data)
            p.set_header(n=n, chunk_size=size, n_chunks=-(-n // size))
            add(base, f"claims n={n} chunk_size={size}", p)
        p = parse(by_name[base].data)
        p.set_header(n=0, n_chunks=200_000)
        p.chunks = [Chunk(0, b"")] * 200_000
        add(base, "200,000 chunks of zero rows", p)
        p = parse(by_name[base].data)
        p.set_header(n=0, n_chunks=0)
        p.chunks = [Chunk(0, b"")] * 1000
        add(base, "1,000 chunks for n=0", p)

    for base in [b.name for b in bases() if b.name != "empty"]:
        src = parse(by_name[base].data)
        k = len(src.chunks)
        v2 = src.version >= 2
        fid = file_id_of(src.header) if v2 else None

        def layout(name: str, chunks: list[Chunk], **kw) -> None:
            p = parse(by_name[base].data)
            p.chunks = chunks
            for key, v in kw.items():
                setattr(p, key, v)
            add(base, name, p)

        def bound(i: int) -> Chunk:  # chunk i as written in place i: its CRC stays with it when moved
            return replace(src.chunks[i], bind=(fid, i))

        if k >= 2:
            layout("chunks 1 and 2 swapped", [bound(1), bound(0)] + [bound(i) for i in range(2, k)])
            layout("chunks reversed", [bound(i) for i in reversed(range(k))])
            layout("chunk 1 repeated", [bound(0), bound(0)] + [bound(i) for i in range(2, k)])
            layout("chunks 1 and 2 swapped, CRCs for their new places", [src.chunks[1], src.chunks[0]] + src.chunks[2:])
        layout("last chunk dropped", [bound(i) for i in range(k - 1)])
        layout("last chunk twice", [bound(i) for i in range(k)] + [bound(k - 1)])
        layout("all-zero words", [replace(c, words=bytes(len(c.words) or 4)) for c in src.chunks])
        layout("no words", [replace(c, words=b"") for c in src.chunks])
        layout("one zero word", [replace(c, words=bytes(4)) for c in src.chunks])
        layout("words of ones", [replace(c, words=b"\xff" * (len(c.words) or 4)) for c in src.chunks])
        layout("first chunk claims 10^9 rows", [replace(src.chunks[0], n_rows=10**9)] + src.chunks[1:])
        layout("first chunk claims 2^20 rows", [replace(src.chunks[0], n_rows=2**20)] + src.chunks[1:])
        layout("first chunk claims 2^30 words", [replace(src.chunks[0], n_words=2**30)] + src.chunks[1:])
        layout("last chunk one row short", src.chunks[:-1] + [replace(src.chunks[-1], n_rows=src.chunks[-1].n_rows - 1)])
        layout("trailing byte", src.chunks, tail=b"\0")
        if v2:
            true_index = []
            pos = len(build(replace(src, chunks=[]))) - (16 if v2 else 0)
            for c in src.chunks:
                true_index.append((pos, c.n_rows))
                pos += 12 + len(c.words)
            layout("footer missing", src.chunks, footer=False)
            layout("footer entries shifted", src.chunks, index=[(o + 4, r) for o, r in true_index])
            layout("footer entries reversed", src.chunks, index=true_index[::-1])
            layout("footer rows changed", src.chunks, index=[(o, r + 1) for o, r in true_index])
            layout("footer of one chunk less", src.chunks, index=true_index[:-1])
            if k >= 2:  # issue 19: a footer entry at a hidden CRC-valid chunk; a span wider than its chunk
                hidden = replace(src.chunks[0], bind=(fid, 1)) if src.chunks[0].n_rows == src.chunks[1].n_rows else None
                if hidden is not None:
                    chunks = [bound(0), hidden] + [bound(i) for i in range(1, k)]
                    p = parse(by_name[base].data)
                    p.chunks = chunks
                    pos = len(build(replace(p, chunks=[], footer=False)))
                    index = []
                    for c in chunks:
                        index.append((pos, c.n_rows))
                        pos += 12 + len(c.words)
                    layout("footer entry at a hidden chunk", chunks, index=index[:2] + index[3:])
                layout("footer spans 4 bytes wider than chunk 1", [bound(0)] + [bound(i) for i in range(1, k)],
                       index=[true_index[0]] + [(o + 4, r) for o, r in true_index[1:]])
            layout("read as version 1", src.chunks, version=1)
            layout(f"read as version {5 - src.version}", src.chunks, version=5 - src.version)  # 2 <-> 3: other chunk streams
        else:
            layout("read as version 2", src.chunks, version=2)
        layout("unknown flag", src.chunks, flags=src.flags | 2)
        layout("header length past the end", src.chunks, header_length=2**32 - 1)
        if src.model is not None:
            for mlen in (2**39, 2**40 + 1, 2**64 - 1, len(src.model) + 1):
                layout(f"model length {mlen}", src.chunks, model_length=mlen)
        else:
            layout("model flag without a model", src.chunks, flags=1)
        # a chunk from another file coded with the same model
        other = [b for b in bases() if b.codec is by_name[base].codec and b.name != base and b.name != "empty"
                 and parse(b.data).version == src.version]
        if other:
            o = parse(other[0].data)
            ofid = file_id_of(o.header) if o.version >= 2 else None
            chunk = replace(o.chunks[0], bind=(ofid, 0))
            if chunk.n_rows == src.chunks[0].n_rows:
                layout(f"chunk 1 from {other[0].name}", [chunk] + [bound(i) for i in range(1, k)])
            layout(f"all chunks from {other[0].name}", [replace(c, bind=(ofid, i)) for i, c in enumerate(o.chunks)])

    for base in [b.name for b in bases() if b.embedded]:
        out.extend(model_attacks(base, by_name[base].data))
    out.append(("embedded", "valid: 65,536 dense rows from a few words", dense_bomb(1 << 16)))
    out.extend(bombs())
    return out


def free_codec(d_in: int, d_sae: int, active: bool) -> Codec:
    """A codec whose rows cost almost nothing: every feature active in all of 2**62 training samples
    (``active``: latents almost free) or in none (empty rows almost free), one value bin; W_dec small
    random [d_sae, d_in]."""
    from mdlcodec.codec import Decoder, EntropyModel, Quantiser

    rng = np.random.default_rng(0)
    dec = Decoder(rng.normal(size=(d_sae, d_in)).astype(np.float32), np.zeros(d_in, np.float32), 1.0)
    big = 1 << 62
    counts = np.full(d_sae, big if active else 0, np.int64)
    model = EntropyModel(big, counts, np.ones(d_sae, np.int32), np.arange(d_sae + 1, dtype=np.int64),
                         counts.copy(), np.zeros(d_sae, np.int64))
    value = 0.05 if active else 0.0
    return Codec(dec, Quantiser(np.full(d_sae, 0.05, np.float32)), model,
                 lambda x: np.full((len(x), d_sae), value, np.float32))


def bomb(codec: Codec, chunk: int, n_chunks: int) -> bytes:
    """A self-contained file of n_chunks chunks of ``chunk`` rows of zeros, each the stream of one
    chunk as the chunk coder writes it (bypassing the encoder's refusal of a chunk past the format's
    latent limit, as an attacker would)."""
    from mdlcodec.codec import SparseCodes
    from mdlcodec.codec.format.container import Header, Writer

    d = codec.decoder.d_sae
    per_row = d if codec.entropy_model.active_counts[0] else 0  # free_codec's latents: all or none
    codes = SparseCodes(np.arange(chunk + 1, dtype=np.int64) * per_row, np.tile(np.arange(per_row, dtype=np.int32), chunk),
                        np.ones(chunk * per_row, np.int32), d)
    words = codec.chunk_coder.encode(codes)
    header = Header(n=chunk * n_chunks, d_in=codec.decoder.d_in, d_sae=codec.decoder.d_sae, chunk_size=chunk,
                    n_chunks=n_chunks, sae_fingerprint=codec.decoder.fingerprint(),
                    entropy_model_fingerprint=codec.entropy_fingerprint, mdlcodec="bomb", file_id="b" * 32)
    f = io.BytesIO()
    w = Writer(f, header, codec.model_section())
    for _ in range(n_chunks):
        w.write_chunk(chunk, words)
    w.finish()
    return f.getvalue()


def bombs() -> list[tuple[str, str, bytes]]:
    """Issue 19's decompression bombs, each valid but for the last: rows wider than memory from a few
    words, many chunks of free rows (an output of 275 GB), a chunk past the latent limit."""
    return [("embedded", "bomb: 2^17 free rows of width 128 in one chunk", bomb(free_codec(128, 2, False), 1 << 17, 1)),
            ("embedded", "bomb: 16 chunks of 2^20 free rows of width 4096", bomb(free_codec(4096, 2, False), 1 << 20, 16)),
            ("embedded", "bomb: 2^21 + 16 free latents in one chunk",
             bomb(free_codec(8, 16, True), MAX_CHUNK_LATENTS // 16 + 1, 1))]


def dense_bomb(rows: int) -> bytes:
    """A valid self-contained file whose model makes every latent nearly free (every feature active in
    all of 2**62 training samples, one value bin): ``rows`` rows of 16 active latents in a few
    words. Decoding it holds the whole chunk, as memory_bound allows."""
    flat, _ = codecs()
    d = flat.decoder.d_sae
    big = 1 << 62
    from mdlcodec.codec import EntropyModel, Quantiser

    model = EntropyModel(big, np.full(d, big, np.int64), np.ones(d, np.int32), np.arange(d + 1, dtype=np.int64),
                         np.full(d, big, np.int64), np.zeros(d, np.int64))
    q = Quantiser(np.full(d, 0.05, np.float32))
    dense = Codec(flat.decoder, q, model, lambda x: np.full((len(x), d), 0.05, np.float32))
    return dense.encode(np.zeros((rows, flat.decoder.d_in), np.float32), chunk_size=rows, embed_model=True,
                        file_id="d" * 32)


def model_attacks(base: str, data: bytes) -> list[tuple[str, str, bytes]]:
    """Arrays of the model section of the wrong rank, length, dtype or value, each alone, the header's
    fingerprints recomputed wherever the section is still a valid model."""
    out = []
    src = parse(data)
    arrays = model_arrays(src)
    d_sae, d_in = arrays["W_dec"].shape

    def add(name: str, a: dict, fingerprints: bool = True) -> None:
        p = parse(data)
        set_model(p, a, fingerprints)
        out.append((base, f"model: {name}", build(p)))

    variants = {
        "0-d": lambda v: np.asarray(v.ravel()[0] if v.size else 0, v.dtype),
        "3-d": lambda v: v.reshape(1, 1, -1),
        "empty": lambda v: v[:0].reshape(0),
        "2-d": lambda v: v.reshape(1, -1),
        "bool": lambda v: v.astype(bool),
        "int8": lambda v: v.astype(np.int8),
        "float64": lambda v: v.astype(np.float64),
        "int32": lambda v: v.astype(np.int32),
        "one longer": lambda v: np.concatenate([v.ravel(), v.ravel()[:1]]),
        "one shorter": lambda v: v.ravel()[:-1],
        "missing": None,
    }
    for key in sorted(arrays):
        for vname, f in variants.items():
            a = dict(arrays)
            if f is None:
                del a[key]
            else:
                a[key] = np.ascontiguousarray(f(arrays[key]))
            add(f"{key} {vname}", a)
    values = {
        "W_dec": [("NaN", np.nan), ("Inf", np.inf), ("1e38", 1e38), ("3e38", 3e38)],
        "b_dec": [("NaN", np.nan), ("-Inf", -np.inf), ("3e38", 3e38)],
        "input_scale": [("0", 0.0), ("-1", -1.0), ("NaN", np.nan), ("Inf", np.inf), ("1e-45", 1e-45)],
        "step": [("0", 0.0), ("-1", -1.0), ("NaN", np.nan), ("Inf", np.inf), ("1e38", 1e38)],
        "n_samples": [("-1", -1), ("2^63-1", 2**63 - 1), ("0", 0)],
        "active_counts": [("-1", -1), ("2^62", 2**62)],
        "value_counts": [("-1", -1), ("2^62", 2**62)],
        "escape_counts": [("-1", -1), ("2^40", 2**40)],
        "value_offsets": [("-1", -1), ("2^40", 2**40)],
        "value_lo": [("int32 max", 2**31 - 1), ("int32 min", -(2**31)), ("0", 0)],
    }
    for key, cases in values.items():
        if key not in arrays:
            continue
        for vname, v in cases:
            a = dict(arrays)
            arr = a[key].copy()
            arr.ravel()[0] = v
            a[key] = arr
            add(f"{key}[0] = {vname}", a)
    a = dict(arrays)
    a["extra"] = np.zeros(3, np.float32)
    add("an unknown array", a)
    a = {k: v for k, v in arrays.items()}
    a["W_dec"] = np.full_like(arrays["W_dec"], 1e30)
    add("W_dec all 1e30", a)
    # counts that a real fit cannot give but that keep every array's shape
    a = dict(arrays)
    a["n_samples"] = np.array([2**62], np.int64)
    a["active_counts"] = np.full(d_sae, 2**62, np.int64)
    a["value_counts"] = np.zeros_like(arrays["value_counts"])
    a["escape_counts"] = np.full(d_sae, 2**62, np.int64)
    add("every feature always active, every value escaped", a)
    # feature forests
    for fname, parents in [("a cycle", np.roll(np.arange(d_sae), 1)),
                           ("a feature its own parent", np.arange(d_sae)),
                           ("a parent out of range", np.full(d_sae, d_sae)),
                           ("a 16-deep chain", np.arange(d_sae) - 1)]:
        a = dict(arrays)
        a["parents"] = parents.astype(np.int64)
        a["joint_counts"] = np.where(parents >= 0, 0, 0).astype(np.int64)
        a["hierarchy_kind"] = np.array([2], np.int64)
        add(f"forest: {fname}", a)
    a = dict(arrays)
    a["parents"] = np.full(d_sae, -1, np.int64)
    add("forest: parents only", a)
    a = dict(arrays)
    a.update(parents=np.full(d_sae, -1, np.int64), joint_counts=np.zeros(d_sae, np.int64),
             hierarchy_kind=np.array([3], np.int64))
    add("forest: kind 3", a)
    if "parents" in arrays:
        a = dict(arrays)
        j = a["joint_counts"].copy()
        j[a["parents"] >= 0] = a["active_counts"][a["parents"] >= 0] + 1
        a["joint_counts"] = j
        add("forest: joint counts above the active counts", a)
        a = dict(arrays)
        a["joint_counts"] = np.zeros(d_sae, np.int64)  # f never with its parent: f's "off" count too large
        a["active_counts"] = np.where(a["parents"] >= 0, a["n_samples"][0], a["active_counts"])
        add("forest: children active whenever their parent is not", a)
    for depth in (20_000, 40_000):
        out.append((base, f"model: forest, one {depth:,}-deep chain", build(deep_chain(data, depth))))
    p = parse(data)
    p.model = b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}"
    out.append((base, "model: not safetensors", build(p)))
    p = parse(data)
    p.model = struct.pack("<Q", 2**40) + b"{}"
    out.append((base, "model: safetensors header 2^40 long", build(p)))
    p = parse(data)
    hdr = json.dumps({"W_dec": {"dtype": "F32", "shape": [2**40, 2**20], "data_offsets": [0, 64]}}).encode()
    p.model = struct.pack("<Q", len(hdr)) + hdr + bytes(64)
    out.append((base, "model: a tensor claiming 2^60 floats", build(p)))
    return out


def deep_chain(data: bytes, depth: int) -> Parts:
    """The file with an embedded model of ``depth`` features in one chain (parent of f is f - 1):
    about 36 bytes per feature, as the issue's 1.2 MB 20,000-deep forest."""
    p = parse(data)
    a = model_arrays(p)
    d_in = a["W_dec"].shape[1]
    d = depth
    a = {"W_dec": np.ones((d, d_in), np.float32), "b_dec": np.zeros(d_in, np.float32),
         "input_scale": np.ones(1, np.float32), "step": np.ones(d, np.float32),
         "n_samples": np.array([10], np.int64), "active_counts": np.full(d, 5, np.int64),
         "value_lo": np.ones(d, np.int32), "value_offsets": np.arange(d + 1, dtype=np.int64),
         "value_counts": np.full(d, 5, np.int64), "escape_counts": np.zeros(d, np.int64),
         "parents": np.arange(d, dtype=np.int64) - 1, "joint_counts": np.r_[0, np.full(d - 1, 5)].astype(np.int64),
         "hierarchy_kind": np.array([1], np.int64)}
    p.model = safetensors.numpy.save(a)
    p.set_header(d_sae=d, sae_fingerprint="0" * 32, entropy_model_fingerprint="0" * 32)
    return p


# -- running a case ----------------------------------------------------------------------------------


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def memory_bound(data: bytes) -> int:
    """The decode memory the README states, whatever the file claims: 64 MiB + 8 x the file's size
    + 4 slices of activations (parallel.SLICE_BYTES) + 160 bytes for each of the at most
    MAX_CHUNK_LATENTS latents of the one chunk held (its decode and the check that re-encodes it);
    for a model section of coded decoder rows also 6 bytes for each weight it may hold for its size
    (decoder_code: at most 2**20 + 8,192 a byte, and MAX_WEIGHTS)."""
    from mdlcodec.codec.rate.decoder_code import MAX_WEIGHTS, MIN_BITS_PER_WEIGHT

    coded = 6 * min(MAX_WEIGHTS, (1 << 20) + int(8 * len(data) / MIN_BITS_PER_WEIGHT)) if b"W_dec_words" in data else 0
    return (64 << 20) + 8 * len(data) + 4 * SLICE_BYTES + 160 * MAX_CHUNK_LATENTS + coded


def _canonical(data: bytes, codec: Codec | None) -> bool:
    """Whether data is exactly what the encoder writes for what it decodes to: each chunk's words
    re-encode from its decoded latents to the same bytes (header and model as they are)."""
    try:
        reader = Reader.open(io.BytesIO(data))
        from mdlcodec.codec.files import open_codec

        own = open_codec(reader, codec)
        p = parse(data)
        parts = list(own.read_codes(reader))
        for c, codes in zip(p.chunks, parts):
            c.words = own.coder(reader.version).encode(codes).astype("<u4").tobytes()
        return build(p) == data
    except Exception:  # noqa: BLE001 - anything that does not re-encode is not canonical
        return False


def _info_key(info: dict) -> dict:
    """info without what depends on the file's path and framing bytes."""
    out = {k: v for k, v in info.items() if k not in ("file", "bytes", "bits", "bits_per_sample")}
    out["payload_bits"] = info["bits"].get("payload")
    out["cross_entropy"] = info["bits"].get("cross_entropy")
    return out


def run_case(data: bytes, base: Base, tmp: Path, time_limit: float = 10.0,
             paths: tuple[str, ...] = ("codec", "decode", "info"), record: list | None = None) -> dict[str, str]:
    """Outcome (see the module docstring) of decoding ``data`` through each of ``paths``:
    "codec" Codec.decode with the base's codec, "decode" decode_file, "latents" decode_file of the
    latents (compared with the base's), "rows" decode_range of a few
    ranges of rows (``row_ranges``: each must be the base's rows, or the same rows of a full decode
    of this file) and "info" inspect_file with decode (with
    the base's codec for a referenced file, the file's own model for a self-contained one). With
    ``record``, appends (path, outcome, seconds, peak traced bytes, memory_bound) for each path.
    ``time_limit`` is for one call: "rows" makes one a range (each a `decode --rows` of its own)."""
    src, dst = tmp / "case.mdlc", tmp / "case.npy"
    src.write_bytes(data)
    (tmp / "case.npz").unlink(missing_ok=True)
    given = None if base.embedded else base.codec
    bound = memory_bound(data)
    out: dict[str, str] = {}
    canonical: dict[str, bool] = {}  # by the codec the path decodes with: the base's, or the file's own
    for path in paths:
        dst.unlink(missing_ok=True)
        tracing = tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        start_mem = tracemalloc.get_traced_memory()[0]
        old = signal.signal(signal.SIGALRM, _alarm)
        limit = time_limit * (max(1, len(row_ranges(len(base.output)))) if path == "rows" else 1)  # a call a range
        signal.setitimer(signal.ITIMER_REAL, limit)
        t0 = time.perf_counter()
        result = None
        try:
            if path == "codec":
                result = base.codec.decode(data)
            elif path == "decode":
                decode_file(src, dst, given)
                result = np.load(dst)
            elif path == "rows":  # each range on its own: a refusal of one does not hide the rows of another
                result = [_range_or_none(src, a, b, given) for a, b in row_ranges(len(base.output))]
                if result and all(r is None for r in result):
                    raise MdlcodecError("every range refused")
            elif path == "latents":
                decode_file(src, tmp / "case.npz", given, latents=True, overwrite=True)
                with np.load(tmp / "case.npz") as z:
                    result = (z["indptr"], z["indices"], z["bins"])
            else:
                result = inspect_file(src, given, decode=True)
            outcome = "ok"
        except Hang:
            outcome = "hang"
        except MdlcodecError:
            outcome = "refused"
        except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
            outcome = f"unexpected:{type(e).__name__}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - start_mem
        if not tracing:
            tracemalloc.stop()
        if outcome == "ok":
            if path == "info":
                same = _info_key(result) == _info_key(base_info(base, tmp))
            elif path == "rows":
                ranges = row_ranges(len(base.output))
                same = all(r is None or np.array_equal(r, base.output[a:b]) for r, (a, b) in zip(result, ranges))
                if not same:  # other rows: only those a full decode of this file gives are right
                    full = _rows_of_full_read(data, given, ranges)
                    if full is None or not all(r is None or np.array_equal(r, f) for r, f in zip(result, full)):
                        out[path] = outcome = "wrong"
                if outcome != "wrong" and any(r is None for r in result):
                    outcome = "refused"  # in part: the rows it gave are right
            elif path == "latents":
                codes = base.codec.decode_latents(base.data)
                same = all(np.array_equal(r, c) for r, c in zip(result, (codes.indptr, codes.indices, codes.bins)))
            else:
                same = result.shape == base.output.shape and np.array_equal(result, base.output)
            if outcome in ("wrong", "refused"):
                pass
            elif same:
                outcome = "identical"
            else:
                which = "base" if path == "codec" else "given"
                if which not in canonical:
                    canonical[which] = _canonical(data, base.codec if path == "codec" else given)
                outcome = "valid-other" if canonical[which] else "wrong"
        if outcome in EXPECTED and elapsed > limit:
            outcome = "hang"
        if outcome in EXPECTED and peak > bound:
            outcome = "memory"
        out[path] = outcome
        if record is not None:
            record.append((path, outcome, elapsed, peak, bound))
    return out


def _range_or_none(src: Path, a: int, b: int, codec: Codec | None) -> np.ndarray | None:
    """Rows a:b of the file by random access, or None if it refuses them (a MdlcodecError)."""
    try:
        return decode_range(src, a, b, codec)
    except MdlcodecError:
        return None


def _rows_of_full_read(data: bytes, codec: Codec | None, ranges: list[tuple[int, int]]) -> list | None:
    """The rows of each range as a sequential read of every chunk with all its checks gives them (one
    chunk held at a time, only the asked rows rebuilt); None if that read refuses the file."""
    from mdlcodec.codec.files import open_codec
    from mdlcodec.codec.parallel import slice_codes

    try:
        reader = Reader.open(io.BytesIO(data))
        own = open_codec(reader, codec)
        pieces: list[list] = [[] for _ in ranges]
        row = 0
        for codes in own.read_codes(reader):
            for piece, (a, b) in zip(pieces, ranges):
                lo, hi = max(a, row), min(b, row + codes.n)
                if lo < hi:
                    piece.append(own.reconstruct(slice_codes(codes, lo - row, hi - row)))
            row += codes.n
        return [np.concatenate(p) if p else np.zeros((0, own.decoder.d_in), np.float32) for p in pieces]
    except MdlcodecError:
        return None


def row_ranges(n: int) -> list[tuple[int, int]]:
    """Ranges random access is asked for in a file of the base's n rows: its first row, rows across
    the middle, its last row."""
    if n == 0:
        return []
    return sorted({(0, 1), (max(0, n // 2 - 2), min(n, n // 2 + 3)), (n - 1, n)})


_INFOS: dict[str, dict] = {}


def base_info(base: Base, tmp: Path) -> dict:
    if base.name not in _INFOS:
        p = tmp / f"base-{base.name}.mdlc"
        p.write_bytes(base.data)
        _INFOS[base.name] = inspect_file(p, None if base.embedded else base.codec, decode=True)
    return _INFOS[base.name]
