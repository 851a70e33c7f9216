"""Decompression bombs (issue 19 §2): a self-contained model can make rows and latents cost almost no
bits, so a small file can claim more rows, wider rows or more latents than memory holds. Decoding
writes activations in bounded slices and latents through files, holds at most
``MAX_CHUNK_LATENTS`` latents of a chunk, refuses up front an output larger than the free space, and
``info`` reads sizes from the framing without decoding rows."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse

from mdlcodec.codec import decode_file, inspect_file
from mdlcodec.codec import files as codec_files
from mdlcodec.codec.format.container import MAX_CHUNK_LATENTS
from mdlcodec.core.errors import CodecError
from tests.codec import fuzz

_codec = fuzz.free_codec


def _file(codec, chunk: int, n_chunks: int, path) -> None:
    path.write_bytes(fuzz.bomb(codec, chunk, n_chunks))


def _peak(call) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_wide_free_rows_are_written_in_bounded_slices(tmp_path, monkeypatch):
    """2**17 empty rows of width 128 in one chunk (64 MiB of float32 from a few hundred bytes of
    chunk): with 1 MiB slices the decode's traced memory stays far below the chunk's rows."""
    monkeypatch.setattr(codec_files, "SLICE_BYTES", 1 << 20)
    codec = _codec(128, 2, active=False)
    src = tmp_path / "wide.mdlc"
    _file(codec, 1 << 17, 1, src)
    assert src.stat().st_size < 10_000
    peak = _peak(lambda: decode_file(src, tmp_path / "out.npy"))
    out = np.load(tmp_path / "out.npy", mmap_mode="r")
    assert out.shape == (1 << 17, 128) and not out[::4096].any()
    assert peak < 24, f"{peak:.0f} MiB traced for 64 MiB of rows"


def test_latents_of_many_chunks_stream_to_the_npz(tmp_path):
    """64 chunks of 2**14 empty rows: --latents keeps one chunk, not all (8 MiB of row pointers alone)."""
    codec = _codec(8, 4, active=False)
    src = tmp_path / "many.mdlc"
    _file(codec, 1 << 14, 64, src)
    peak = _peak(lambda: decode_file(src, tmp_path / "z.npz", latents=True))
    z = scipy.sparse.load_npz(tmp_path / "z.npz")
    assert z.shape == (64 << 14, 4) and z.nnz == 0
    assert peak < 5, f"{peak:.1f} MiB traced (all chunks: over 16)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.mdlc", "z.npz"]


def test_streamed_latents_are_the_in_memory_latents(tmp_path):
    codec = _codec(8, 4, active=True)
    src = tmp_path / "dense.mdlc"
    _file(codec, 256, 4, src)
    decode_file(src, tmp_path / "z.npz", latents=True)
    z = np.load(tmp_path / "z.npz")
    codes = codec.decode_latents(src.read_bytes())
    assert np.array_equal(z["indptr"], codes.indptr) and np.array_equal(z["indices"], codes.indices)
    assert np.array_equal(z["bins"], codes.bins) and np.array_equal(z["data"], codec.quantiser.values(codes))


def test_a_chunk_past_the_latent_limit_is_refused_before_it_is_held(tmp_path):
    """2**21 + 16 almost free latents in one chunk (16 per row): refused as the activity passes the limit."""
    codec = _codec(8, 16, active=True)
    rows = MAX_CHUNK_LATENTS // 16 + 1
    src = tmp_path / "dense.mdlc"
    _file(codec, rows, 1, src)
    t0 = time.perf_counter()
    with pytest.raises(CodecError, match="active latents"):
        decode_file(src, tmp_path / "out.npy")
    assert time.perf_counter() - t0 < 20
    assert not (tmp_path / "out.npy").exists()


def test_the_encoder_refuses_a_chunk_past_the_latent_limit_and_names_a_chunk_size_that_fits():
    codec = _codec(8, 16, active=True)
    with pytest.raises(CodecError, match="chunk size of at most") as e:
        codec.chunk_words(np.zeros((MAX_CHUNK_LATENTS // 16 + 1, 8), np.float32))
    assert e.value.param == "chunk_size"


def test_an_output_larger_than_the_free_space_is_refused_up_front(tmp_path):
    """400 chunks of 2**20 empty rows of width 4096: 6.9 TB of activations from a file of ~300 KB."""
    codec = _codec(4096, 2, active=False)
    src = tmp_path / "bomb.mdlc"
    _file(codec, 1 << 20, 400, src)
    t0 = time.perf_counter()
    with pytest.raises(CodecError, match="free"):
        decode_file(src, tmp_path / "out.npy", allow_expansion=True)  # past the expansion check (below)
    assert time.perf_counter() - t0 < 5 and sorted(p.name for p in tmp_path.iterdir()) == ["bomb.mdlc"]
    t0 = time.perf_counter()
    info = inspect_file(src)  # sizes from the framing: no row is decoded
    assert time.perf_counter() - t0 < 5
    assert info["samples"] == 400 << 20 and info["bits"]["payload"] >= 0 and "cross_entropy" not in info["bits"]


def test_rows_claimed_far_beyond_the_files_size_are_refused_up_front(tmp_path):
    """Issue 29 §5: 100 KB claiming 2**20 rows of width 8,192 (32 GiB of float32; the disk may have
    room), and 10 KB of 4.2 x 10**8 empty rows (3.4 GB of row pointers as latents, 83 s to write):
    refused before any chunk is decoded, by every path that would produce them, naming the ratio;
    allowed with ``allow_expansion``, and a range of rows is measured by its own size."""
    from tests.codec import fuzz_classes

    (wide_name, wide), (many_name, many) = fuzz_classes.row_bombs()
    assert len(wide) < 100_000 and len(many) < 12_000
    src, src2 = tmp_path / "wide.mdlc", tmp_path / "many.mdlc"
    src.write_bytes(wide)
    src2.write_bytes(many)
    for call in (lambda: decode_file(src, tmp_path / "out.npy"),
                 lambda: codec_files.decode_range(src, 0, 1 << 20),
                 lambda: decode_file(src2, tmp_path / "out.npz", latents=True),
                 lambda: codec_files.decode_range(src2, 0, 400 << 20, latents=True),
                 lambda: inspect_file(src2, decode=True)):
        t0 = time.perf_counter()
        with pytest.raises(CodecError, match="times the file's") as e:
            call()
        assert e.value.param == "expansion" and time.perf_counter() - t0 < 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.mdlc", "wide.mdlc"]
    part = codec_files.decode_range(src, 5, 37)  # 1 MiB of rows: no bomb
    assert part.shape == (32, 8192) and not part.any()
