"""Random access (decode_range reads only the chunks that hold the rows) and the chunk tasks of
codec/parallel.py run in this process: the same bytes and rows as Codec.encode / a full decode.
The local process pool and the Dask engine are tested through the CLI (tests/cli/test_parallel_cmd.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from mdlcodec.codec import Codec, SparseCodes, decode_file, decode_range, encode_file
from mdlcodec.codec.format.container import Reader
from mdlcodec.codec.parallel import slice_codes
from mdlcodec.core.errors import CodecError

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = Path(__file__).parents[1] / "golden"
FILE_ID = "0f" * 16


class CountingFile(io.RawIOBase):
    """A binary file that records the byte ranges read from it."""

    def __init__(self, data: bytes):
        self.data, self.pos, self.reads = data, 0, []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = [offset, self.pos + offset, len(self.data) + offset][whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:
        chunk = self.data[self.pos:self.pos + len(b)]
        b[:len(chunk)] = chunk
        if chunk:
            self.reads.append((self.pos, self.pos + len(chunk)))
        self.pos += len(chunk)
        return len(chunk)

    def read(self, size: int = -1) -> bytes:  # unbuffered: each read is one record
        size = len(self.data) - self.pos if size is None or size < 0 else size
        buf = bytearray(size)
        return bytes(buf[:self.readinto(buf)])


@pytest.fixture(scope="module")
def coded(toy_model_dir, tmp_path_factory):
    """(codec, x [600, 12], path of its .mdlc in chunks of 50 rows, its bytes)."""
    model_dir, ds = toy_model_dir
    codec = Codec.load(model_dir)
    x = np.asarray(ds.test, np.float32)
    path = tmp_path_factory.mktemp("par") / "x.mdlc"
    encode_file(codec, x, path, chunk_size=50, file_id=FILE_ID)
    return codec, x, path, path.read_bytes()


def test_the_serial_engine_writes_the_bytes_of_codec_encode(coded):
    codec, x, _, data = coded
    assert data == codec.encode(x, chunk_size=50, file_id=FILE_ID)


@pytest.mark.parametrize("start, stop", [(0, 1), (49, 51), (120, 260), (599, 600), (550, None), (0, None)])
def test_decode_range_reads_only_the_chunks_holding_the_rows(coded, start, stop):
    codec, _, path, data = coded
    full, full_codes = codec.decode(data), codec.decode_latents(data)
    end = 600 if stop is None else stop
    f = CountingFile(data)
    got = decode_range(f, start, stop, codec)
    np.testing.assert_array_equal(got, full[start:end])
    assert got.dtype == np.float32 and got.shape == (end - start, 12)
    assert decode_range(path, start, stop, codec, latents=True) == slice_codes(full_codes, start, end)

    index = Reader.open(io.BytesIO(data)).chunk_index()
    needed = {i for i, e in enumerate(index) if e.first_row < end and e.first_row + e.n_rows > start}
    ends = [e.offset for e in index[1:]] + [len(data) - (16 + 12 * len(index))]
    for i, e in enumerate(index):  # every chunk's 8-byte head is read (its framing checked), payloads only where needed
        past_head = any(a < ends[i] and b > e.offset + 8 for a, b in f.reads)
        assert past_head == (i in needed), (i, needed)
    if (start, stop) != (0, None):  # a range is read from the index, not in order: far fewer bytes
        read = sum(b - a for a, b in f.reads)
        assert read < Reader.open(io.BytesIO(data)).preamble_bytes + 40 + sum(
            ends[i] - index[i].offset for i in needed) + 16 + 12 * len(index) + 8 * len(index)


def test_decode_file_rows_writes_exactly_those_rows(coded, tmp_path):
    codec, _, path, data = coded
    r = decode_file(path, tmp_path / "part.npy", codec, rows=(70, 333))
    assert r["samples"] == 263
    np.testing.assert_array_equal(np.load(tmp_path / "part.npy"), codec.decode(data)[70:333])
    decode_file(path, tmp_path / "part.npz", codec, latents=True, rows=(70, None))
    z = np.load(tmp_path / "part.npz")
    assert SparseCodes(z["indptr"], z["indices"], z["bins"], codec.decoder.d_sae) == slice_codes(
        codec.decode_latents(data), 70, 600)


@pytest.mark.parametrize("rows, needle", [((5, 601), "out of range"), ((600, None), "select no rows"),
                                          ((9, 9), "select no rows"), ((-1, 4), "non-negative")])
def test_bad_row_range_is_refused_and_writes_nothing(coded, tmp_path, rows, needle):
    codec, _, path, _ = coded
    with pytest.raises(CodecError, match=needle) as e:
        decode_file(path, tmp_path / "o.npy", codec, rows=rows)
    assert e.value.param == "rows" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["referenced.mdlc", "embedded.mdlc"])
def test_version_1_files_without_an_index_decode_a_range_in_order(name):
    data = (GOLDEN / name).read_bytes()
    reader = Reader.open(io.BytesIO(data))
    assert reader.version == 1
    codec = Codec.load(GOLDEN / "model") if name == "referenced.mdlc" else None
    full = (codec or Codec.from_model_section(reader.model_bytes)).decode(data)
    n = reader.header.n
    for start, stop in [(0, 1), (3, n - 2), (n - 1, n)]:
        np.testing.assert_array_equal(decode_range(io.BytesIO(data), start, stop, codec), full[start:stop])


def test_slice_codes_keeps_the_rows_entries():
    codes = SparseCodes.from_dense(np.array([[0, 1, 0], [2, 0, -1], [0, 0, 0], [0, 3, 0]]))
    for a in range(4):
        for b in range(a, 5):
            np.testing.assert_array_equal(slice_codes(codes, a, b).to_dense(), codes.to_dense()[a:b])
