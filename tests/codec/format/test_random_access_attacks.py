"""Random access trusts nothing (issue 19 §1): ``decode --rows`` (``decode_range``) refuses every
file whose indexed spans do not each hold exactly the one chunk a sequential read meets there, so
that it returns only rows a full decode of the same file returns. Files are crafted from the fuzzer's
bases with every CRC recomputed (the footer's too), as an attacker who knows the file id would."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mdlcodec.codec import decode_file
from mdlcodec.codec.files import decode_range
from mdlcodec.core.errors import CodecError
from tests.codec import fuzz


@pytest.fixture(scope="module")
def base():
    b = {b.name: b for b in fuzz.bases()}["referenced"]  # 25 rows in chunks of 10
    assert len(fuzz.parse(b.data).chunks) == 3
    return b


def _index(p: fuzz.Parts) -> list[tuple[int, int]]:
    pos = len(fuzz.build(replace(p, chunks=[], footer=False)))
    out = []
    for c in p.chunks:
        out.append((pos, c.n_rows))
        pos += 12 + len(c.words)
    return out


def _other_chunk_1(base) -> fuzz.Chunk:
    """Another valid stream of 10 rows, bound to this file's chunk 1 (its CRC recomputed for that place)."""
    other = base.codec.encode(np.random.default_rng(5).normal(size=(10, 8)).astype(np.float32), chunk_size=10)
    return replace(fuzz.parse(other).chunks[0], bind=(fuzz.file_id_of(fuzz.parse(base.data).header), 1))


def _full_refuses(path, base, tmp_path) -> None:
    with pytest.raises(CodecError):
        decode_file(path, tmp_path / "full.npy", base.codec)


def test_a_footer_entry_pointing_at_a_hidden_chunk_is_refused(base, tmp_path):
    """C0, C1', C1, C2 with the footer naming C1' as chunk 2 (its span holding C1' and C1) and C2 as
    chunk 3: the spans tile the file, every CRC is right, and a full decode refuses the file (it
    meets C1 where chunk 3 should be). Random access must not return C1'."""
    p = fuzz.parse(base.data)
    hidden = _other_chunk_1(base)
    bound = [replace(c, bind=(fuzz.file_id_of(p.header), i)) for i, c in enumerate(p.chunks)]
    p.chunks = [bound[0], hidden, bound[1], bound[2]]
    true = _index(p)
    p.index = [true[0], true[1], true[3]]
    path = tmp_path / "hidden.mdlc"
    path.write_bytes(fuzz.build(p))
    _full_refuses(path, base, tmp_path)
    with pytest.raises(CodecError, match="footer"):
        decode_range(path, 10, 20, base.codec)
    with pytest.raises(CodecError, match="footer"):  # chunk 1 is sound, the layout is not (issue 29 §4)
        decode_range(path, 0, 10, base.codec)


def test_a_span_longer_than_its_chunk_is_refused(base, tmp_path):
    """Four bytes after chunk 1, the footer's offsets moved to match: chunk 1's span does not end where
    its framing does. A sequential read refuses the file; random access of chunk 1 must too."""
    p = fuzz.parse(base.data)
    true = _index(p)
    data = bytearray(fuzz.build(replace(p, footer=False)))
    cut = true[1][0]
    data[cut:cut] = bytes(4)
    index = [true[0], (true[1][0] + 4, true[1][1]), (true[2][0] + 4, true[2][1])]
    crafted = _with_footer(bytes(data), index, p.header)
    path = tmp_path / "gap.mdlc"
    path.write_bytes(crafted)
    _full_refuses(path, base, tmp_path)
    with pytest.raises(CodecError, match="footer"):
        decode_range(path, 0, 10, base.codec)


def _with_footer(body: bytes, index: list[tuple[int, int]], header: bytes) -> bytes:
    import struct
    import zlib

    from mdlcodec.codec.format.container import FOOTER_TAG

    fid = fuzz.file_id_of(header)
    foot = FOOTER_TAG + b"".join(struct.pack("<QI", o, r) for o, r in index) + struct.pack("<I", zlib.crc32(body))
    return body + foot + struct.pack("<I", zlib.crc32(foot, zlib.crc32(fid)))


@pytest.mark.parametrize("rows", [(0, 25), (3, 17), (10, 20), (24, 25), (9, 11)])
def test_random_access_of_a_sound_file_is_the_full_decode(base, tmp_path, rows):
    path = tmp_path / "ok.mdlc"
    path.write_bytes(base.data)
    assert np.array_equal(decode_range(path, *rows, base.codec), base.output[slice(*rows)])


def test_a_hidden_chunk_after_the_real_one_is_refused_before_any_chunk_is_read(base, tmp_path):
    """Issue 29 §4: C0, C1, H1, C2 with the footer naming C0, H1, C2: entry 1 spans C0 and C1 (two real
    chunks), entry 2 exactly H1, every CRC right. Rows of chunk 2 alone must be refused too (they were
    H1's: other data), since the layout is checked for every chunk's head before any chunk is read."""
    from tests.codec.fuzz_classes import index_attacks

    [(_, data)] = index_attacks(base)
    path = tmp_path / "after.mdlc"
    path.write_bytes(data)
    _full_refuses(path, base, tmp_path)
    for rows in [(10, 20), (12, 13), (0, 1), (20, 25)]:
        with pytest.raises(CodecError, match="footer"):
            decode_range(path, *rows, base.codec)


def test_a_version_1_file_that_a_full_read_refuses_is_refused_by_random_access(tmp_path):
    """A version-1 file (no index) with bytes after its last chunk: a full read refuses it; a range
    read in order up to its last chunk returned rows (the fuzzer's case 1042 at seed 0, a mutation
    that shortened the last chunk). Every chunk's head and the file's end are now checked first."""
    base = {b.name: b for b in fuzz.bases()}["v1-referenced"]
    p = fuzz.parse(base.data)
    p.tail = bytes(8)
    path = tmp_path / "tail.mdlc"
    path.write_bytes(fuzz.build(p))
    _full_refuses(path, base, tmp_path)
    for rows in [(20, 25), (0, 1)]:
        with pytest.raises(CodecError, match="after the last chunk"):
            decode_range(path, *rows, base.codec)
