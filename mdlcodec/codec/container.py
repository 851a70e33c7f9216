"""The .mdlc file format (version 1). This docstring is its specification.

All integers are little-endian.

    file    := preamble header [model] chunk*  (exactly header.n_chunks chunks, then end of file)
    preamble:= magic  b"MDLC\\x00\\r\\n\\x1a"   (8 bytes; the \\r\\n and \\x1a catch text-mode mangling)
               version u16 (= 1)
               flags   u16 (bit 0: the model section is present; other bits 0)
    header  := length u32, then that many bytes of UTF-8 JSON, then crc32 u32 over everything from
               the magic to the end of the JSON. JSON keys:
                 n, d_in, d_sae          samples, activation width, dictionary size
                 dtype                   dtype of the decoded activations ("float32")
                 chunk_size, n_chunks    samples per chunk (the last may hold fewer), chunk count
                 quantiser               "uniform" (bin * step[f]; steps are in the model tables)
                 sae_fingerprint         Decoder.fingerprint() of the decoder it was coded for
                 entropy_model_fingerprint  fingerprint of quantiser steps + entropy-model counts
                 mdlcodec                version that wrote it (informative)
    model   := length u64, that many bytes of safetensors (decoder and tables, see codec.py; the
               table arrays are listed in entropy_model.py, a feature forest's among them when
               activity is coded hierarchically), crc32 u32 over the length and the bytes. Present
               iff flags bit 0: the file is then self-contained, the two-part code of the paper.
    chunk   := n_rows u32, n_words u32, n_words * 4 bytes of ANS words (bitstream.py, activity.py),
               crc32 u32 over n_rows, n_words and the words.

A reader refuses, with a CodecError naming the problem: another magic or version, a bad CRC, a
length past the end of the file, chunks whose rows do not add up to n, and bytes after the last
chunk. Every single-byte change and every truncation is therefore caught.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from mdlcodec.core.errors import CodecError

MAGIC = b"MDLC\x00\r\n\x1a"
VERSION = 1
FLAG_MODEL = 1
_HEADER_KEYS = {"n", "d_in", "d_sae", "dtype", "chunk_size", "n_chunks", "quantiser",
                "sae_fingerprint", "entropy_model_fingerprint", "mdlcodec"}


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

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":")).encode()


def write_preamble(f: BinaryIO, header: Header, model_bytes: bytes | None) -> int:
    """Write preamble, header and optional model section; returns the bytes written."""
    head = MAGIC + struct.pack("<HH", VERSION, FLAG_MODEL if model_bytes is not None else 0)
    body = header.to_json()
    head += struct.pack("<I", len(body)) + body
    head += struct.pack("<I", zlib.crc32(head))
    if model_bytes is not None:
        sec = struct.pack("<Q", len(model_bytes)) + model_bytes
        head += sec + struct.pack("<I", zlib.crc32(sec))
    f.write(head)
    return len(head)


def write_chunk(f: BinaryIO, n_rows: int, words: np.ndarray) -> int:
    """Write one chunk; returns the bytes written."""
    data = struct.pack("<II", n_rows, len(words)) + np.ascontiguousarray(words, dtype="<u4").tobytes()
    f.write(data + struct.pack("<I", zlib.crc32(data)))
    return len(data) + 4


def _read(f: BinaryIO, size: int, what: str) -> bytes:
    b = f.read(size)
    if len(b) != size:
        raise CodecError(f"file is truncated: it ends inside the {what}")
    return b


@dataclass
class Reader:
    """Parses an .mdlc stream: header and model on construction, chunks on iteration."""

    f: BinaryIO
    header: Header
    model_bytes: bytes | None
    preamble_bytes: int

    @classmethod
    def open(cls, f: BinaryIO) -> "Reader":
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise CodecError("not an .mdlc file (wrong magic bytes)")
        version, flags = struct.unpack("<HH", _read(f, 4, "preamble"))
        if version != VERSION:
            raise CodecError(f"unsupported .mdlc format version {version} (this mdlcodec reads version {VERSION})")
        if flags & ~FLAG_MODEL:
            raise CodecError(f"unknown flags {flags:#x} in the .mdlc preamble")
        (length,) = struct.unpack("<I", _read(f, 4, "header"))
        if length > 1 << 20:
            raise CodecError("corrupted header (implausible length)")
        body = _read(f, length, "header")
        (crc,) = struct.unpack("<I", _read(f, 4, "header"))
        if zlib.crc32(magic + struct.pack("<HHI", version, flags, length) + body) != crc:
            raise CodecError("corrupted header (CRC mismatch)")
        try:
            fields = json.loads(body)
            if set(fields) != _HEADER_KEYS:
                raise ValueError
            header = Header(**fields)
        except (ValueError, TypeError):
            raise CodecError("corrupted header (unreadable fields)") from None
        size = len(MAGIC) + 12 + length
        model_bytes = None
        if flags & FLAG_MODEL:
            raw_len = _read(f, 8, "model section")
            (mlen,) = struct.unpack("<Q", raw_len)
            model_bytes = f.read(mlen) if mlen < 1 << 40 else b""
            if len(model_bytes) != mlen:
                raise CodecError("file is truncated: it ends inside the model section")
            (crc,) = struct.unpack("<I", _read(f, 4, "model section"))
            if zlib.crc32(raw_len + model_bytes) != crc:
                raise CodecError("corrupted model section (CRC mismatch)")
            size += 12 + mlen
        return cls(f, header, model_bytes, size)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (n_rows, words) for each chunk, checking CRCs, counts and the end of the file."""
        h = self.header
        rows_seen = 0
        for i in range(h.n_chunks):
            what = f"chunk {i + 1} of {h.n_chunks}"
            head = _read(self.f, 8, what)
            n_rows, n_words = struct.unpack("<II", head)
            if n_rows > h.chunk_size or rows_seen + n_rows > h.n or n_words > (1 << 31) // 4:
                raise CodecError(f"corrupted {what} (impossible length fields)")
            payload = _read(self.f, 4 * n_words, what)
            (crc,) = struct.unpack("<I", _read(self.f, 4, what))
            if zlib.crc32(head + payload) != crc:
                raise CodecError(f"corrupted {what} (CRC mismatch)")
            rows_seen += n_rows
            yield n_rows, np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        if rows_seen != h.n:
            raise CodecError(f"corrupted file: chunks hold {rows_seen} samples, the header says {h.n}")
        if self.f.read(1):
            raise CodecError("corrupted file: bytes after the last chunk")
