"""Encoding and decoding files chunk by chunk (bounded memory), and what a file's bits are spent on.

Takes arrays (a memory-mapped .npy streams), never dataset paths: reading activation files is the
data layer's job (workers of a parallel run open the input with the ``parallel.RowSource`` the caller
gives, such as the data layer's ``load_rows`` and its arguments). Chunks are coded by the tasks of
``parallel.py``, in this process, local worker processes or on a Dask cluster, the same bytes either
way; ``decode_range`` reads only the chunks that hold a range of rows. Outputs are written to a temporary file beside the destination and renamed into
place, so an error never leaves a half-written file, and an input is never overwritten.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from mdlcodec.codec.arrays import check_memory
from mdlcodec.codec.codec import DEFAULT_CHUNK, Codec
from mdlcodec.codec.expansion import activation_bytes, check_expansion, latent_bytes
from mdlcodec.codec.format.container import Reader, Writer
from mdlcodec.codec.latents_npz import write_csr_npz
from mdlcodec.codec.parallel import (
    DEFAULT_SCHEDULER_TIMEOUT,
    SLICE_BYTES,
    CodecRef,
    DecodeTask,
    EncodeTask,
    Engine,
    RowSource,
    decode_rows,
    encode_chunk,
    engine,
    new_run,
    slice_codes,
)
from mdlcodec.codec.scale import scale_warning
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.atomic import atomic_output
from mdlcodec.core.errors import CodecError


def _check_rows(x: np.ndarray, d_in: int, what: str) -> np.ndarray:
    """x as a 2-D numeric array of width d_in (not copied: a memmap, or a lazy matrix with shape, dtype
    and row slicing such as data.shards.ShardedRows, stays on disk); CodecError otherwise."""
    lazy = isinstance(getattr(x, "dtype", None), np.dtype) and hasattr(x, "shape") and hasattr(x, "__getitem__")
    if not isinstance(x, np.ndarray) and not lazy:
        x = np.asarray(x)
    if x.ndim != 2:
        raise CodecError(f"{what} has shape {list(x.shape)}, expected a matrix [n, {d_in}]")
    if x.shape[1] != d_in:
        raise CodecError(f"{what} has activations of width {x.shape[1]}, the model expects {d_in}")
    if x.dtype.kind not in "fiu":
        raise CodecError(f"{what} is not numeric (dtype {x.dtype})")
    return x


def _read_by(codec: Codec, *paths: str | Path) -> tuple[str | Path, ...]:
    """What a run reads and its output may not replace: ``paths`` and the codec's model folder."""
    return (*paths, *((codec.model_dir,) if codec.model_dir is not None else ()))


def encode_file(codec: Codec, x: np.ndarray, dst: str | Path, chunk_size: int = DEFAULT_CHUNK,
                embed_model: bool = False, overwrite: bool = False, inputs: tuple[str | Path, ...] = (),
                what: str = "activations", *, file_id: str | None = None, source: RowSource | None = None,
                workers: int = 1, scheduler: str | None = None,
                scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT, device: str = "cpu") -> dict:
    """Encode activations x [n, d_in] (any array; a np.memmap is read one chunk at a time) into an
    .mdlc file at dst, atomically; ``inputs``: files and folders dst must not replace (nor, with or
    without ``overwrite``, a file of the codec's model folder); ``what`` names x in errors;
    ``file_id`` (32 hex digits): the file's identifier instead of a new random one (two encodings of
    the same rows with the same file_id are the same bytes, however they were run).

    Chunks are coded by ``parallel.encode_chunk``: here, or with ``workers`` > 1 in that many local
    processes, or with ``scheduler`` on a Dask cluster; those load the codec from its model folder
    (``Codec.load``; on ``device``) and read their rows from ``source`` (x opened where they run,
    e.g. RowSource(data.load_rows, (spec, split))), or without one are sent each chunk's rows by this
    process. This process writes the chunks in order, a bounded number in flight (2 per worker); the
    bytes do not depend on how the chunks were coded. It uses only codec's header, fingerprints,
    tables and model section: for a run on workers, ``codec`` may be loaded without its encoder
    (``Codec.load(encoder=False)``: no torch SAE here), and the model section (``embed_model``) is
    held only while it is written.

    Returns {"samples": n, "bytes": size of the file, "warnings": lines for the user (scale.scale_warning
    on the first chunk: an input on another scale than the SAE's training data)}."""
    x = _check_rows(x, codec.decoder.d_in, what)
    n = len(x)
    warnings = [w for w in (scale_warning(x[:chunk_size], codec.data_stats),) if w]
    header = codec.header(n, chunk_size, file_id)
    header.validate(problem="cannot write this file")
    with engine(workers, scheduler, scheduler_timeout) as run:
        ref = codec if run.local else CodecRef.of(codec, header, device)
        token = new_run()

        def tasks() -> Iterator[EncodeTask]:
            for i, s in enumerate(range(0, n, chunk_size)):
                e = min(s + chunk_size, n)
                if run.local or source is not None:
                    yield EncodeTask(token, ref, x if run.local else source, s, e, i, n, what)
                else:
                    yield EncodeTask(token, ref, np.asarray(x[s:e]), 0, e - s, i, e - s, what, offset=s)

        with atomic_output(dst, _read_by(codec, *inputs), overwrite) as tmp:
            with open(tmp, "wb") as f:
                writer = Writer(f, header, codec.model_section() if embed_model else None)
                for i, words in enumerate(run.map(encode_chunk, tasks())):
                    writer.write_chunk(header.chunk_rows(i), words)
                writer.finish()
    return {"samples": n, "bytes": Path(dst).stat().st_size, "warnings": warnings}


def encode_codes_file(codec: Codec, codes: SparseCodes, dst: str | Path, chunk_size: int = DEFAULT_CHUNK,
                      embed_model: bool = False, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> dict:
    """An .mdlc file at dst (atomically, as ``encode_file``) from quantised latents already computed:
    ``codes`` are what ``codec.latents(x, chunk_size)`` gives for the activations x, so the file is
    ``encode_file``'s of x but for its file_id, without running the encoder again. For callers that
    code one split under several codecs of one SAE (``measure`` over tolerances).

    Returns {"samples": n, "bytes": size of the file}."""
    header = codec.header(codes.n, chunk_size)
    header.validate(problem="cannot write this file")
    with atomic_output(dst, _read_by(codec, *inputs), overwrite) as tmp:
        with open(tmp, "wb") as f:
            writer = Writer(f, header, codec.model_section() if embed_model else None)
            for i, s in enumerate(range(0, codes.n, chunk_size)):
                e = min(s + chunk_size, codes.n)
                writer.write_chunk(e - s, codec.codes_words(slice_codes(codes, s, e), s))
            writer.finish()
    return {"samples": codes.n, "bytes": Path(dst).stat().st_size}


def payload_bits(data: bytes | BinaryIO | Reader) -> int:
    """The payload of an .mdlc file (its bytes, a binary file at its start, or a Reader not yet read
    past its model section): the bits of its coded chunks, 32 per ANS word, without magic, header,
    model section or chunk framing, from the framing alone (nothing decoded). CRCs are checked."""
    if not isinstance(data, Reader):
        data = Reader.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    return sum(32 * len(words) for _, words in data.chunks())


def open_codec(reader: Reader, codec: Codec | None) -> Codec:
    """The codec to decode a file with: the one given (checked by fingerprint) or the file's own."""
    if codec is not None:
        return codec.for_header(reader.header)
    if reader.model_bytes is None:
        raise CodecError("this file does not embed its model: pass the model it was encoded with (-m MODEL)")
    own = Codec.from_model_section(reader.model_bytes, reader.header)
    own.check_header(reader.header)
    return own


def check_row_range(start: int, stop: int | None, n: int) -> tuple[int, int]:
    """(start, stop) of rows start:stop of a file of n rows (stop None: n); CodecError unless
    0 <= start < stop <= n."""
    stop = n if stop is None else stop
    if not (isinstance(start, int) and isinstance(stop, int)) or start < 0 or stop < 0:
        raise CodecError(f"rows {start}:{stop} are not two non-negative integers", param="rows")
    if start >= stop:
        raise CodecError(f"rows {start}:{stop} select no rows (the file holds {n}: 0:{n})", param="rows")
    if stop > n:
        raise CodecError(f"rows {start}:{stop} are out of range: the file holds {n} rows (0:{n})", param="rows")
    return start, stop


def _chunks_for(reader: Reader, start: int, stop: int) -> Iterator[tuple[int, int, np.ndarray, int, int]]:
    """(i, n_rows, words, a, b) for each chunk i holding rows of start:stop, its rows a:b of them.

    Every row (0:n): read in order, every check of ``Reader.chunks`` (CRCs, footer, whole-file CRC).
    A range of a version-2 file that can seek: only the chunks holding it, found by the footer's
    index (``Reader.chunk_index``, which first checks every chunk's framing against it; each chunk's
    CRC binds it to the file and its place). Of a version-1 file (no index) or a stream: read in
    order from the first chunk up to the last needed one, only the needed ones decoded; a version-1
    file that can seek has every chunk's head and its end checked first (``chunk_index``), so that
    random access refuses every layout a full read refuses."""
    h = reader.header
    whole = (start, stop) == (0, h.n)
    if whole or reader.version < 2 or reader.size is None:
        if not whole and reader.size is not None:  # version 1: every chunk's head and the file's end checked first
            reader.chunk_index()
        row = 0
        for i, (n_rows, words) in enumerate(reader.chunks()):
            a, b = max(start, row), min(stop, row + n_rows)
            if a < b:
                yield i, n_rows, words, a - row, b - row
            row += n_rows
            if row >= stop and not whole:
                return
        return
    index = reader.chunk_index()
    first = bisect.bisect_right([e.first_row for e in index], start) - 1
    for i in range(first, h.n_chunks):
        e = index[i]
        if e.first_row >= stop:
            break
        n_rows, words = reader.read_chunk(i, e)
        yield i, n_rows, words, max(start, e.first_row) - e.first_row, min(stop, e.first_row + n_rows) - e.first_row


def _decoded(reader: Reader, codec: Codec, start: int, stop: int, run: Engine, reconstruct: bool,
             path: Path | None, embedded: bool) -> Iterator[SparseCodes | np.ndarray]:
    """The rows start:stop of the opened file, chunk by chunk in order, decoded by
    ``parallel.decode_rows`` on ``run``: activations [rows, d_in] float32 with ``reconstruct``, else
    quantised latents. ``path``: the file's, for workers that load its embedded model."""
    h = reader.header
    if run.local:
        ref: Codec | CodecRef = codec
    elif embedded:
        if path is None:
            raise CodecError("workers load a self-contained file's model from the file: give its path")
        ref = CodecRef(str(path.resolve()), h, embedded=True)
    else:
        ref = CodecRef.of(codec, h, encoder=False)
    token = new_run()
    rows_fit = max(1, SLICE_BYTES // (4 * h.d_in))  # a task reconstructs a chunk only if it fits a slice
    tasks = (DecodeTask(token, ref, i, h.n_chunks, n_rows, words, a, b, reconstruct and b - a <= rows_fit, reader.version)
             for i, n_rows, words, a, b in _chunks_for(reader, start, stop))
    for part in run.map(decode_rows, tasks):
        if reconstruct and isinstance(part, SparseCodes):
            yield from (x for _, x in _rebuilt(codec, part, rows_fit))
        else:
            yield part


def _rebuilt(codec: Codec, codes: SparseCodes, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(a, activations of rows a:a + rows of codes) for each slice of ``rows`` rows in order: memory
    holds one slice of rebuilt rows, however many the chunk holds."""
    for a in range(0, codes.n, rows):
        yield a, codec.reconstruct(slice_codes(codes, a, min(a + rows, codes.n)))


def _check_expansion(reader: Reader, rows: int, latents: bool, allow: bool) -> None:
    """``expansion.check_expansion`` of ``rows`` decoded rows (latents or activations) of the opened file
    (unchecked where its size is unknown: a pipe)."""
    if reader.size is not None:
        h = reader.header
        out = latent_bytes(rows) if latents else activation_bytes(rows, h.d_in)
        check_expansion(out, reader.size, f"the {'latents' if latents else 'activations'} of {rows:,} rows", allow)


def _check_room(dst: Path, nbytes: int, what: str) -> None:
    """CodecError, before anything is written, if ``nbytes`` will not fit the free space where dst goes."""
    try:
        free = shutil.disk_usage(dst.parent).free
    except OSError:
        return
    if nbytes > free:
        raise CodecError(f"{what} would take {nbytes:,} bytes and {dst.parent} has {free:,} free")


@contextlib.contextmanager
def _opened(src: str | Path | BinaryIO) -> Iterator[tuple[BinaryIO, Path | None]]:
    if isinstance(src, (str, Path)):
        with open(src, "rb") as f:
            yield f, Path(src)
    else:
        yield src, None


def decode_range(src: str | Path | BinaryIO, start: int = 0, stop: int | None = None, codec: Codec | None = None,
                 latents: bool = False, workers: int = 1, scheduler: str | None = None,
                 scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT,
                 allow_expansion: bool = False) -> np.ndarray | SparseCodes:
    """Rows start:stop (stop None: to the end) of an .mdlc file (a path, or a binary file open at its
    start), in memory: activations [stop - start, d_in] float32, or with ``latents`` the quantised
    latents (SparseCodes); exactly those rows of a full decode. A version-2 file that can seek is read
    only where the chunks holding the rows lie (``_chunks_for``). CodecError (param "rows") unless
    0 <= start < stop <= n. ``workers`` / ``scheduler``, ``allow_expansion``: as ``decode_file``."""
    with _opened(src) as (f, path):
        reader = Reader.open(f)
        start, stop = check_row_range(start, stop, reader.header.n)
        _check_expansion(reader, stop - start, latents, allow_expansion)
        codec = open_codec(reader, codec)
        check_memory(8 * (stop - start + 1) + (0 if latents else 4 * (stop - start) * reader.header.d_in),
                     f"rows {start}:{stop}")
        with engine(workers, scheduler, scheduler_timeout) as run:
            parts = list(_decoded(reader, codec, start, stop, run, not latents, path, reader.model_bytes is not None
                                  and codec.model_dir is None))
    if latents:
        return SparseCodes.concat(parts)
    return np.concatenate(parts)


def decode_file(src: str | Path, dst: str | Path, codec: Codec | None = None, latents: bool = False,
                overwrite: bool = False, rows: tuple[int, int | None] | None = None, workers: int = 1,
                scheduler: str | None = None, scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT,
                allow_expansion: bool = False) -> dict:
    """Decode an .mdlc file to a .npy of activations [n, d_in] float32, or with ``latents`` to a .npz
    of the quantised latents in scipy's CSR layout, so ``scipy.sparse.load_npz`` reads it: format
    "csr", shape [n, d_sae], indptr [n+1] int64, indices [nnz] int32, data [nnz] float32 = bins *
    step; beside them bins [nnz] int32 and step [d_sae] float32 (the quantiser's).

    ``rows`` (start, stop or None): only rows start:stop, n = stop - start of them, exactly as a full
    decode gives them, reading only the chunks that hold them where the file has an index (version
    2; ``decode_range``); CodecError (param "rows") unless 0 <= start < stop <= the file's rows.
    Chunks are decoded by ``parallel.decode_rows``: here, or with ``workers`` > 1 in local
    processes, or with ``scheduler`` on a Dask cluster (each with the checks of ``Codec.read_codes``);
    this process writes them in order.

    The output grows as chunks are decoded and checked, activations in slices of at most
    ``parallel.SLICE_BYTES``, latents through files beside the output (``latents_npz.write_csr_npz``): memory
    holds the model, the chunks in flight (each at most ``container.MAX_CHUNK_LATENTS`` latents) and one
    slice, whatever the file claims. An output larger than the free space where it goes is refused
    before anything is decoded, and so is, unless ``allow_expansion``, one over 1 GiB and more than
    ``expansion.MAX_EXPANSION`` times the file's size (a decompression bomb; latents counted by their
    row pointers). Returns {"samples": rows written, "output": str(dst)}."""
    with open(src, "rb") as f:
        reader = Reader.open(f)
        h = reader.header
        start, stop = check_row_range(*rows, h.n) if rows is not None else (0, h.n)
        _check_expansion(reader, stop - start, latents, allow_expansion)
        codec = open_codec(reader, codec)
        embedded = reader.model_bytes is not None and codec.model_dir is None
        dst = Path(dst)
        if latents:  # at least the row pointers, twice (beside the output, then in it)
            _check_room(dst, 16 * (stop - start + 1), "the latents of these rows")
        else:
            _check_room(dst, 4 * (stop - start) * h.d_in + 128, "the activations of these rows")
        with engine(workers, scheduler, scheduler_timeout) as run, \
                atomic_output(dst, _read_by(codec, src), overwrite) as tmp:
            parts = _decoded(reader, codec, start, stop, run, not latents, Path(src), embedded)
            if latents:
                with open(tmp, "wb") as out:
                    write_csr_npz(out, parts, tmp, stop - start, h.d_sae, codec.quantiser)
            else:  # the .npy grows as chunks are decoded and checked, never to the header's n unverified
                with open(tmp, "wb") as out:
                    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False,
                                                              "shape": (stop - start, h.d_in)})
                    for x in parts:
                        out.write(np.ascontiguousarray(x, dtype="<f4").data)
    return {"samples": stop - start, "output": str(dst)}


def inspect_file(src: str | Path, codec: Codec | None = None, against: np.ndarray | None = None,
                 decode: bool = False, allow_expansion: bool = False) -> dict:
    """What an .mdlc file holds and what its bits are spent on, in the README's vocabulary.

    ``bits`` (whole file) and ``bits_per_sample``: header, model (the embedded model section, 0 if
    none), payload (the coded chunks, from their framing: read and CRC-checked, not decoded) and file
    (every byte). With a model (given or embedded), from its tables alone:
    ``model_entropy_bits_per_sample`` (the tables' expected bits per sample: activity, values,
    total), ``decoder_bits`` (the two-part term, whole decoder), ``decoder_rows`` ("float32", or
    "coded, L levels a side": decoder_code) and ``hierarchy``. With ``decode`` (and a model), every
    chunk is decoded too (one at a time; the time grows with the rows the file holds): activity and
    values (the payload measured on the stream, by part) and cross_entropy (the ideal code length of
    the file's symbols under the tables). With ``against`` (the original activations [n, d_in];
    implies ``decode``): MSE and FVU of the reconstruction (CodecError if its shape differs).
    ``decode`` without ``against`` refuses, unless ``allow_expansion``, a file whose rows' latents
    would be more than ``expansion.MAX_EXPANSION`` times its size and over 1 GiB (``decode_file``):
    the work grows with the rows; ``against`` bounds it by the caller's own rows.
    """
    size = Path(src).stat().st_size
    with open(src, "rb") as f:
        reader = Reader.open(f)
        h = reader.header
        if decode and against is None:
            _check_expansion(reader, h.n, True, allow_expansion)
        model_bits = 8 * (len(reader.model_bytes) + 12) if reader.model_bytes is not None else 0
        info: dict = {"file": str(src), "samples": h.n, "d_in": h.d_in, "d_sae": h.d_sae, "chunks": h.n_chunks,
                      "bytes": size, "self_contained": reader.model_bytes is not None,
                      "sae_fingerprint": h.sae_fingerprint}
        if codec is not None or reader.model_bytes is not None:
            codec = open_codec(reader, codec)
            info["model_entropy_bits_per_sample"] = codec.entropy_model.expected_bits_per_sample()
            info["decoder_bits"] = codec.decoder.bits()
            info["decoder_rows"] = (f"coded, {codec.decoder.coded.levels} levels a side"
                                    if codec.decoder.coded is not None else "float32")
            forest = codec.entropy_model.hierarchy
            if forest is not None:
                info["hierarchy"] = {"kind": forest.kind, "edges": forest.n_edges, "table_bits": codec.hierarchy_bits()}
        elif decode or against is not None:
            open_codec(reader, None)  # the one line saying that a model is needed
        if not decode and against is None:
            payload = payload_bits(reader)
            info["bits"] = {"header": 8 * size - model_bits - payload, "model": model_bits, "payload": payload}
            return _per_sample(info, h.n)
        x = None
        if against is not None:
            x = _check_rows(against, h.d_in, "the original activations")
            if len(x) != h.n:
                raise CodecError(f"the original activations have {len(x)} rows, the file holds {h.n} samples")
        stats: dict = {"activity_bits": 0, "value_bits": 0}
        ideal = 0.0
        sq_err = 0.0
        row = 0
        s1 = np.zeros(h.d_in)
        s2 = 0.0
        rows_fit = max(1, SLICE_BYTES // (8 * h.d_in))
        for codes in codec.read_codes(reader, stats):
            ideal += codec.chunk_coder.ideal_bits(codes)["total"]
            if x is not None:
                for a, rebuilt in _rebuilt(codec, codes, rows_fit):
                    orig = np.asarray(x[row + a:row + a + len(rebuilt)], dtype=np.float64)
                    sq_err += float(((rebuilt - orig) ** 2).sum())
                    s1 += orig.sum(0)
                    s2 += float((orig ** 2).sum())
            row += codes.n
    payload = stats["activity_bits"] + stats["value_bits"]
    info["bits"] = {"header": 8 * size - model_bits - payload, "model": model_bits,
                    "activity": stats["activity_bits"], "values": stats["value_bits"], "payload": payload,
                    "cross_entropy": ideal}
    if x is not None and h.n:
        info["mse"] = sq_err / (h.n * h.d_in)
        total_var = s2 - float((s1 ** 2).sum()) / h.n
        info["fvu"] = sq_err / total_var if total_var > 0 else float("nan")
    return _per_sample(info, h.n)


def _per_sample(info: dict, n: int) -> dict:
    info["bits"]["file"] = 8 * info["bytes"]
    info["bits_per_sample"] = {k: v / max(n, 1) for k, v in info["bits"].items()}
    return info


def codec_for_file(src: str | Path, model_dir: str | Path, device: str = "cpu", encoder: bool = False) -> Codec:
    """The codec in ``model_dir`` with the table set the .mdlc file ``src`` names in its header (the
    current set, or one kept in the folder's archive), so that files coded before a refit, or by
    ``measure``, decode with the model folder; without its encoder (the torch SAE) unless ``encoder``:
    decoding and ``inspect_file`` do not encode."""
    with open(src, "rb") as f:
        fingerprint = Reader.open(f).header.entropy_model_fingerprint
    return Codec.load(model_dir, device, tables=fingerprint if isinstance(fingerprint, str) else None, encoder=encoder)
