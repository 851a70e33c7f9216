"""The .mdlc file format, versions 1, 2 and 3 (this code writes version 3, or 2 when asked, and reads
all three). This docstring is its specification.

Versions 2 and 3 share the container below; they differ only in the chunk stream, the ANS words of
a chunk (``bitstream.py``): version 3 codes which features are active as the occupancy patterns of
an 8-ary tree (``occupancy.py``, about 2.4 symbols per active latent at d_sae = 16,384), versions 1
and 2 by binary range splitting (``activity.py``, 12.7 binary decisions there). The tables (the
model section and the fingerprints) are the same in every version.

All integers are little-endian; an offset counts bytes from the first byte of the magic.

    file    := preamble header [model] chunk* [footer]   (exactly header.n_chunks chunks; the footer
               from version 2 on; then the end of the file)
    preamble:= magic  b"MDLC\\x00\\r\\n\\x1a"   (8 bytes; the \\r\\n and \\x1a catch text-mode mangling)
               version u16 (1, 2 or 3)
               flags   u16 (bit 0: the model section is present; other bits 0)
    header  := length u32, then that many bytes of UTF-8 JSON, then crc32 u32 over everything from
               the magic to the end of the JSON. The JSON is one flat object with the keys:
                 n, d_in, d_sae          samples, activation width, dictionary size
                 dtype                   dtype of the decoded activations ("float32")
                 chunk_size, n_chunks    samples per chunk (the last may hold fewer), chunk count
                 quantiser               "uniform" (bin * step[f]; steps are in the model tables)
                 sae_fingerprint         Decoder.fingerprint() of the decoder it was coded for
                 entropy_model_fingerprint  fingerprint of quantiser steps + entropy-model counts
                 mdlcodec                version that wrote it (informative)
                 file_id                 versions 2 and 3 only: 16 random bytes, new for every file, as 32 hex digits
    model   := length u64, that many bytes of safetensors (decoder and tables, see codec.py; the
               table arrays are listed in entropy_model.py, a feature forest's among them when
               activity is coded hierarchically), crc32 u32 over the length and the bytes. Present
               iff flags bit 0: the file is then self-contained, the two-part code of the paper.
    chunk   := n_rows u32, n_words u32, n_words * 4 bytes of ANS words (bitstream.py, activity.py),
               crc32 u32 over
                 version 1: n_rows, n_words and the words;
                 versions 2, 3: file_id (its 16 bytes), the chunk's sequence number u32 (0 for the first),
                            n_rows, n_words and the words,
               so that a chunk of version 2 or 3 met at another position or in another file fails its CRC.
    footer  := versions 2 and 3 only: tag b"MDLCIDX\\x00"; for each chunk in order, its offset u64 (where
               its n_rows field is) and its n_rows u32; file_crc u32, the crc32 of every byte from
               the magic to the end of the last chunk; crc32 u32 over file_id (16 bytes) and the
               footer from its tag to file_crc. It is 16 + 12 * n_chunks bytes and ends the file, so
               a reader that can seek finds every chunk from the end (``Reader.chunk_index``).

Fields and limits. A reader refuses whatever lies outside them with a CodecError naming the problem,
before it allocates memory for what the file claims or starts decoding; the writer refuses to write
it (one function, ``Header.validate``, checks both):
  header JSON   at most 65,536 bytes of UTF-8; one flat object (no object or array inside); exactly
                the keys of its version, each once; no NaN or Infinity
  n             an integer (not 1.0, "1" or true), 0 <= n <= 2**48
  d_in, d_sae   integers, 1 <= d <= 2**31 - 1
  chunk_size    an integer, 1 <= chunk_size <= 2**20 (MAX_CHUNK_ROWS); decoding holds one chunk
  chunk latents at most 2**21 active latents in a chunk (MAX_CHUNK_LATENTS), so that decoding one
                holds a bounded number whatever a model makes them cost: the decoder stops as soon as
                a chunk's activity passes it, the encoder refuses such a chunk (a smaller chunk_size fits);
                version 3 also at most 2**21 forest bits in a chunk (``occupancy.MAX_CHUNK_DECISIONS``:
                children of the active features under a feature forest), refused alike
  n_chunks      ceil(n / chunk_size); every chunk holds chunk_size rows but the last, which holds
                n - (n_chunks - 1) * chunk_size
  dtype, quantiser  "float32", "uniform"
  sae_fingerprint, entropy_model_fingerprint, file_id   32 lowercase hexadecimal digits
  mdlcodec      a string of at most 64 characters
  model section at most 2**40 bytes, and no more than the file has left; exactly the arrays
                Codec.model_section writes, each of its dtype and shape, checked against each
                other and the header before use (codec.py, entropy_model.py): finite float32
                weights, input_scale and steps > 0, counts in [0, n_samples <= 2**62], each
                feature's value and escape counts summing to its active count, value tables
                within the int32 bins, a feature forest at most 64 deep (hierarchy.py)
  chunk words   no more than the file has left
  chunk count   where the file's size is known (a file or bytes, not a pipe), a header claiming more
                chunks than the bytes after it can frame (12 bytes each; 24 in versions 2 and 3, plus 16 of
                footer) is refused before anything is decoded.
A reader also refuses another magic or version, unknown flags, a bad CRC, a footer that does not
match the chunks read (offsets, rows, file_crc), and bytes after the end. Every single-byte change and
every truncation is caught; in versions 2 and 3 so is a chunk swapped, repeated, dropped or taken from
another file, each with its CRCs recomputed. Random access (``chunk_index``, ``read_chunk``) first
reads the head (8 bytes) of every chunk the footer names and requires each span between entries i
and i + 1 (or the footer) to be filled exactly by the framing of the one chunk there, so it meets
each chunk at the place a sequential read does: it returns only rows a full decode returns, and
refuses every file whose chunk layout a full decode refuses, and a file whose footer, header, model
section or read chunks a full decode refuses (the payloads it does not read, it does not check). Reading allocates only as bytes arrive (in pieces of
at most 16 MiB), so a length field never allocates more than the file holds.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, NamedTuple

import numpy as np

from mdlcodec.core.errors import CodecError
from mdlcodec.core.jsonio import parse_json

MAGIC = b"MDLC\x00\r\n\x1a"
VERSION = 3
VERSIONS = (1, 2, 3)
WRITABLE = (2, 3)
"""Versions ``Writer`` writes (3 by default; 2 for files an older mdlcodec must read)."""
FLAG_MODEL = 1
FOOTER_TAG = b"MDLCIDX\x00"
FILE_ID_BYTES = 16

MAX_HEADER_BYTES = 1 << 16
MAX_ROWS = 1 << 48
MAX_DIM = 2**31 - 1
MAX_CHUNK_ROWS = 1 << 20
MAX_CHUNK_LATENTS = 1 << 21
MAX_MODEL_BYTES = 1 << 40
_READ_PIECE = 1 << 24

_V1_KEYS = {"n", "d_in", "d_sae", "dtype", "chunk_size", "n_chunks", "quantiser",
            "sae_fingerprint", "entropy_model_fingerprint", "mdlcodec"}
_KEYS = {1: _V1_KEYS, 2: _V1_KEYS | {"file_id"}, 3: _V1_KEYS | {"file_id"}}
_HEX32 = re.compile(r"[0-9a-f]{32}")


def _show(v) -> str:
    try:
        s = json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


@dataclass
class Header:
    n: int
    d_in: int
    d_sae: int
    chunk_size: int
    n_chunks: int
    sae_fingerprint: str
    entropy_model_fingerprint: str
    dtype: str = "float32"
    quantiser: str = "uniform"
    mdlcodec: str = ""
    file_id: str | None = None  # version 2 and later: 32 hex digits
    version: int = VERSION  # the format version of the file (in its preamble, not in the JSON)

    def to_json(self) -> bytes:
        fields = {k: v for k, v in self.__dict__.items() if k != "version" and (k != "file_id" or v is not None)}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, body: bytes, version: int) -> "Header":
        """The header of a file of ``version`` from its JSON bytes, validated; CodecError otherwise."""
        try:  # the project's one JSON reader, held to one flat object
            fields = parse_json(body, "header", CodecError, MAX_HEADER_BYTES, max_depth=1)
        except CodecError as e:
            raise CodecError(f"corrupted header ({str(e).removeprefix('cannot read header: ')})") from None
        if not isinstance(fields, dict):
            raise CodecError("corrupted header (the JSON is not an object)")
        keys = _KEYS[version]
        if set(fields) != keys:
            missing, extra = sorted(keys - set(fields)), sorted(set(fields) - keys)
            raise CodecError("corrupted header (" + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown key(s) {', '.join(_show(k) for k in extra[:3])}"] if extra else [])) + ")")
        header = cls(**fields, version=version)
        header.validate(version)
        return header

    def validate(self, version: int | None = None, problem: str = "corrupted header") -> None:
        """CodecError "<problem> (...)" naming the first field of the wrong type or outside the limits
        of the format docstring, for a file of ``version`` (default: the header's): the reader's and the
        writer's one check."""
        version = self.version if version is None else version

        def integer(name: str, lo: int, hi: int) -> int:
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:
                raise CodecError(f"{problem} ({name} = {_show(v)}; expected an integer in [{lo}, {hi}])")
            return v

        def text(name: str, ok) -> None:
            v = getattr(self, name)
            if not isinstance(v, str) or not ok(v):
                raise CodecError(f"{problem} ({name} = {_show(v)} is not valid)")

        n = integer("n", 0, MAX_ROWS)
        integer("d_in", 1, MAX_DIM)
        integer("d_sae", 1, MAX_DIM)
        size = integer("chunk_size", 1, MAX_CHUNK_ROWS)
        integer("n_chunks", 0, MAX_ROWS)
        if self.n_chunks != -(-n // size):
            raise CodecError(f"{problem} ({self.n_chunks} chunks cannot hold n = {n} samples "
                             f"in chunks of {size}; expected {-(-n // size)})")
        text("dtype", lambda v: v == "float32")
        text("quantiser", lambda v: v == "uniform")
        text("sae_fingerprint", _HEX32.fullmatch)
        text("entropy_model_fingerprint", _HEX32.fullmatch)
        text("mdlcodec", lambda v: len(v) <= 64)
        if version >= 2:
            text("file_id", _HEX32.fullmatch)
        elif self.file_id is not None:
            raise CodecError(f"{problem} (a version-1 header has no file_id)")

    def chunk_rows(self, i: int) -> int:
        """Rows of chunk i (0-based): chunk_size, but for the last chunk."""
        return self.chunk_size if i < self.n_chunks - 1 else self.n - (self.n_chunks - 1) * self.chunk_size


def new_file_id() -> str:
    """16 random bytes as 32 hex digits: the identifier of a file of version 2 or 3."""
    return os.urandom(FILE_ID_BYTES).hex()


def _chunk_crc(file_id: bytes | None, i: int, head: bytes, payload: bytes) -> int:
    crc = zlib.crc32(file_id + struct.pack("<I", i)) if file_id is not None else 0
    return zlib.crc32(payload, zlib.crc32(head, crc))


def _footer_length(n_chunks: int) -> int:
    return len(FOOTER_TAG) + 12 * n_chunks + 8


class Writer:
    """Writes a file of the header's version (one of WRITABLE): preamble, header and model section on
    construction, then ``write_chunk`` for each chunk in order (its words coded for that version),
    then ``finish`` (the footer). Refuses (CodecError) a header outside the format's limits and chunks
    whose rows the header does not say, so that it never writes a file that ``Reader`` refuses."""

    def __init__(self, f: BinaryIO, header: Header, model_bytes: bytes | None):
        if header.version not in WRITABLE:
            raise CodecError(f"cannot write a version-{header.version} file (this mdlcodec writes versions "
                             f"{', '.join(map(str, WRITABLE))})")
        header.validate(header.version, "cannot write this file")
        if model_bytes is not None and len(model_bytes) > MAX_MODEL_BYTES:
            raise CodecError(f"the model section would be {len(model_bytes)} bytes, beyond the format's {MAX_MODEL_BYTES}")
        self.f, self.header, self.file_id = f, header, bytes.fromhex(header.file_id)
        head = MAGIC + struct.pack("<HH", header.version, FLAG_MODEL if model_bytes is not None else 0)
        body = header.to_json()
        if len(body) > MAX_HEADER_BYTES:
            raise CodecError("the header would exceed the format's limit")
        head += struct.pack("<I", len(body)) + body
        head += struct.pack("<I", zlib.crc32(head))
        if model_bytes is not None:
            sec = struct.pack("<Q", len(model_bytes)) + model_bytes
            head += sec + struct.pack("<I", zlib.crc32(sec))
        self.index: list[tuple[int, int]] = []
        self.offset = 0
        self.crc = 0
        self._write(head)

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.offset += len(data)
        self.crc = zlib.crc32(data, self.crc)

    def write_chunk(self, n_rows: int, words: np.ndarray) -> None:
        i = len(self.index)
        h = self.header
        if i >= h.n_chunks or n_rows != h.chunk_rows(i):
            raise CodecError(f"chunk {i + 1} holds {n_rows} rows; the header says "
                             + (f"{h.chunk_rows(i)}" if i < h.n_chunks else f"there are only {h.n_chunks} chunks"))
        if len(words) >= 1 << 32:
            raise CodecError(f"chunk {i + 1} would be too long for the format")
        payload = np.ascontiguousarray(words, dtype="<u4").tobytes()
        head = struct.pack("<II", n_rows, len(words))
        self.index.append((self.offset, n_rows))
        self._write(head + payload + struct.pack("<I", _chunk_crc(self.file_id, i, head, payload)))

    def finish(self) -> int:
        """Writes the footer; returns the file's length in bytes."""
        if len(self.index) != self.header.n_chunks:
            raise CodecError(f"{len(self.index)} chunks written, the header says {self.header.n_chunks}")
        body = FOOTER_TAG + b"".join(struct.pack("<QI", o, r) for o, r in self.index) + struct.pack("<I", self.crc)
        self.f.write(body + struct.pack("<I", zlib.crc32(body, zlib.crc32(self.file_id))))
        return self.offset + len(body) + 4


def _read(f: BinaryIO, size: int, what: str) -> bytes:
    """Exactly size bytes, read in pieces so that memory grows only with the bytes that are there."""
    if size <= _READ_PIECE:
        b = f.read(size)
    else:
        parts, left = [], size
        while left:
            part = f.read(min(left, _READ_PIECE))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        b = b"".join(parts)
    if len(b) != size:
        raise CodecError(f"file is truncated: it ends inside the {what}")
    return b


class ChunkEntry(NamedTuple):
    """Where chunk ``i`` of a file is: the offset of its n_rows field, its rows, its first row in the
    file, and the offset of the byte after it (the next chunk's offset, or the footer's)."""

    offset: int
    n_rows: int
    first_row: int
    stop: int


@dataclass
class Reader:
    """Parses an .mdlc stream: header and model on construction, chunks on iteration."""

    f: BinaryIO
    header: Header
    model_bytes: bytes | None
    preamble_bytes: int
    version: int = VERSION
    size: int | None = None  # bytes from the magic to the end of the file, where known
    _start: int = field(default=0, repr=False)
    _crc: int = field(default=0, repr=False)  # crc32 of everything read up to the first chunk

    @classmethod
    def open(cls, f: BinaryIO) -> "Reader":
        start, size = 0, None
        try:
            if f.seekable():
                start = f.tell()
                size = f.seek(0, os.SEEK_END) - start
                f.seek(start)
        except (OSError, ValueError):
            size = None
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise CodecError("not an .mdlc file (wrong magic bytes)")
        pre = _read(f, 4, "preamble")
        version, flags = struct.unpack("<HH", pre)
        if version not in VERSIONS:
            raise CodecError(f"unsupported .mdlc format version {version} (this mdlcodec reads versions "
                             f"{', '.join(map(str, VERSIONS))})")
        if flags & ~FLAG_MODEL:
            raise CodecError(f"unknown flags {flags:#x} in the .mdlc preamble")
        raw_len = _read(f, 4, "header")
        (length,) = struct.unpack("<I", raw_len)
        if length > MAX_HEADER_BYTES:
            raise CodecError("corrupted header (implausible length)")
        body = _read(f, length, "header")
        raw_crc = _read(f, 4, "header")
        crc = zlib.crc32(magic + pre + raw_len + body)
        if crc != struct.unpack("<I", raw_crc)[0]:
            raise CodecError("corrupted header (CRC mismatch)")
        crc = zlib.crc32(raw_crc, crc)
        header = Header.parse(body, version)
        pos = len(MAGIC) + 12 + length
        model_bytes = None
        if flags & FLAG_MODEL:
            raw_len = _read(f, 8, "model section")
            (mlen,) = struct.unpack("<Q", raw_len)
            if mlen > MAX_MODEL_BYTES or (size is not None and mlen + 12 > size - pos):
                raise CodecError("file is truncated: it ends inside the model section" if mlen <= MAX_MODEL_BYTES
                                 else "corrupted model section (implausible length)")
            model_bytes = _read(f, mlen, "model section")
            raw_crc = _read(f, 4, "model section")
            crc = zlib.crc32(raw_len + model_bytes, crc)
            if zlib.crc32(raw_len + model_bytes) != struct.unpack("<I", raw_crc)[0]:
                raise CodecError("corrupted model section (CRC mismatch)")
            crc = zlib.crc32(raw_crc, crc)
            pos += 12 + mlen
        if size is not None:
            per_chunk, fixed = (24, 16) if version >= 2 else (12, 0)
            room = max(size - pos - fixed, 0) // per_chunk
            if header.n_chunks > room:
                raise CodecError(f"file is truncated: the header claims {header.n_chunks} chunks, "
                                 f"the {size - pos} bytes after it can hold at most {room}")
        return cls(f, header, model_bytes, pos, version, size, start, crc)

    @property
    def file_id(self) -> bytes | None:
        """The 16 bytes every chunk's CRC covers (versions 2 and 3); None for version 1."""
        return bytes.fromhex(self.header.file_id) if self.version >= 2 else None

    def _chunk(self, i: int, left: int | None, span: int | None = None) -> tuple[bytes, bytes, bytes]:
        """Reads chunk i (0-based) at the file's position: head, words and CRC bytes, checked; ``left``:
        bytes the file has for it, ``span``: bytes the footer's index gives it, which its own framing
        must fill exactly (random access)."""
        h = self.header
        what = f"chunk {i + 1} of {h.n_chunks}"
        head = _read(self.f, 8, what)
        n_rows, n_words = struct.unpack("<II", head)
        if n_rows != h.chunk_rows(i):
            raise CodecError(f"corrupted {what} (it holds {n_rows} rows; the header's n and chunk_size "
                             f"give it {h.chunk_rows(i)})")
        if span is not None and 4 * n_words + 12 != span:
            raise CodecError(f"corrupted footer (its entry for {what} spans {span} bytes; the chunk there "
                             f"frames {4 * n_words + 12})")
        if left is not None and 4 * n_words + 12 > left:
            raise CodecError(f"file is truncated: it ends inside the {what}")
        payload = _read(self.f, 4 * n_words, what)
        raw_crc = _read(self.f, 4, what)
        if _chunk_crc(self.file_id, i, head, payload) != struct.unpack("<I", raw_crc)[0]:
            raise CodecError(f"corrupted {what} (CRC mismatch" + (": damaged, or a chunk of another file or place)"
                                                                   if self.version >= 2 else ")"))
        return head, payload, raw_crc

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (n_rows, words) for each chunk in order, read sequentially from the end of the model
        section, checking CRCs, row counts, the footer (versions 2 and 3) and the end of the file."""
        h = self.header
        pos, crc, index = self.preamble_bytes, self._crc, []
        footer = _footer_length(h.n_chunks) if self.version >= 2 else 0
        for i in range(h.n_chunks):
            head, payload, raw_crc = self._chunk(i, None if self.size is None else self.size - pos - footer)
            index.append((pos, h.chunk_rows(i)))
            crc = zlib.crc32(raw_crc, zlib.crc32(payload, zlib.crc32(head, crc)))
            pos += 12 + len(payload)
            yield h.chunk_rows(i), np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        if self.version >= 2:
            entries = self._footer(_read(self.f, footer, "footer"))
            if entries[:-1] != index:
                raise CodecError("corrupted footer (its chunk index does not match the chunks)")
            if entries[-1] != crc:
                raise CodecError("corrupted file (the whole-file CRC in the footer does not match)")
        if self.f.read(1):
            raise CodecError("corrupted file: bytes after the last chunk")

    def _footer(self, raw: bytes) -> list:
        """The footer's [(offset, n_rows) per chunk..., file_crc], its tag and CRC checked."""
        n = self.header.n_chunks
        if raw[:len(FOOTER_TAG)] != FOOTER_TAG:
            raise CodecError("corrupted footer (no chunk index where the file should end)")
        if zlib.crc32(raw[:-4], zlib.crc32(self.file_id)) != struct.unpack("<I", raw[-4:])[0]:
            raise CodecError("corrupted footer (CRC mismatch)")
        body = raw[len(FOOTER_TAG):-8]
        out: list = [tuple(e) for e in struct.iter_unpack("<QI", body)] if n else []
        out.append(struct.unpack("<I", raw[-8:-4])[0])
        return out

    def chunk_index(self) -> list[ChunkEntry]:
        """Every chunk's place (offset from the magic, rows, first row), for random access; needs a
        file that can seek, and leaves its position where it was. Versions 2 and 3: from the footer,
        checked (tag and CRC; offsets rising from the end of the model section by whole chunks, the
        last ending at the footer; rows as the header says) and against every chunk's framing (one
        8-byte read of each chunk's head, no payload: its n_rows and n_words must fill its entry's
        span exactly, so that each span holds one chunk and the spans hold every chunk a sequential
        read meets); the file_crc is checked only by a sequential read (``chunks``), each chunk's
        own CRC binding it to this file and position (``read_chunk``). Version 1: by reading the
        chunk heads."""
        h, f = self.header, self.f
        if self.size is None:
            raise CodecError("the file cannot seek: its chunks can only be read in order")
        back = f.tell()
        try:
            out, rows = [], 0
            if self.version >= 2:
                footer = _footer_length(h.n_chunks)
                f.seek(self._start + self.size - footer)
                entries = self._footer(_read(f, footer, "footer"))[:-1]
                ends = [o for o, _ in entries[1:]] + [self.size - footer]
                pos = self.preamble_bytes
                for i, ((offset, n_rows), end) in enumerate(zip(entries, ends)):
                    if offset != pos or end - offset < 12 or (end - offset) % 4 or n_rows != h.chunk_rows(i):
                        raise CodecError(f"corrupted footer (entry {i + 1} of {h.n_chunks} does not frame a chunk)")
                    f.seek(self._start + offset)  # the chunk's own framing must fill the span: one chunk, no more
                    head_rows, n_words = struct.unpack("<II", _read(f, 8, f"chunk {i + 1} of {h.n_chunks}"))
                    if head_rows != n_rows or 12 + 4 * n_words != end - offset:
                        raise CodecError(f"corrupted footer (its entry for chunk {i + 1} of {h.n_chunks} spans "
                                         f"{end - offset} bytes; the chunk there frames {12 + 4 * n_words})")
                    out.append(ChunkEntry(offset, n_rows, rows, end))
                    rows, pos = rows + n_rows, end
                if pos != self.size - footer:
                    raise CodecError("corrupted footer (its chunks do not fill the file)")
            else:
                pos = self.preamble_bytes
                for i in range(h.n_chunks):
                    f.seek(self._start + pos)
                    n_rows, n_words = struct.unpack("<II", _read(f, 8, f"chunk {i + 1} of {h.n_chunks}"))
                    if n_rows != h.chunk_rows(i) or pos + 12 + 4 * n_words > self.size:
                        raise CodecError(f"corrupted chunk {i + 1} of {h.n_chunks} (impossible length fields)")
                    out.append(ChunkEntry(pos, n_rows, rows, pos + 12 + 4 * n_words))
                    rows, pos = rows + n_rows, pos + 12 + 4 * n_words
                if pos != self.size:
                    raise CodecError("corrupted file: bytes after the last chunk")
            return out
        finally:
            f.seek(back)

    def read_chunk(self, i: int, entry: ChunkEntry) -> tuple[int, np.ndarray]:
        """(n_rows, words) of chunk i (0-based) at ``entry`` of ``chunk_index``, CRC checked (in version
        2 against this file and position i) and its framing filling the entry's span exactly, so that
        the chunks random access reads are the chunks a sequential read meets at the same places;
        leaves the file's position where it was."""
        if not 0 <= i < self.header.n_chunks:
            raise CodecError(f"there is no chunk {i + 1}: the file has {self.header.n_chunks}")
        back = self.f.tell()
        try:
            self.f.seek(self._start + entry.offset)
            _, payload, _ = self._chunk(i, None, entry.stop - entry.offset)  # the span is within the file
            return entry.n_rows, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        finally:
            self.f.seek(back)
