"""Encoding and decoding files chunk by chunk (bounded memory), and what a file's bits are spent on.

Takes arrays (a memory-mapped .npy streams), never dataset paths: reading activation files is the
data layer's job. Outputs are written to a temporary file beside the destination and renamed into
place, so an error never leaves a half-written file, and an input is never overwritten.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from mdlcodec.codec.codec import DEFAULT_CHUNK, Codec
from mdlcodec.codec.container import Reader
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


def _finite_chunk(x: np.ndarray, start: int, stop: int, what: str) -> np.ndarray:
    """Rows start:stop of x as float32; CodecError naming the row in x (not in the chunk) on NaN or Inf."""
    part = np.asarray(x[start:stop], dtype=np.float32)
    bad = ~np.isfinite(part)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(part[r, c]) else "Inf"
        raise CodecError(f"{what} contains {kind} (first at row {start + r}, column {c})")
    return part


def encode_file(codec: Codec, x: np.ndarray, dst: str | Path, chunk_size: int = DEFAULT_CHUNK,
                embed_model: bool = False, overwrite: bool = False, inputs: tuple[str | Path, ...] = (),
                what: str = "activations") -> dict:
    """Encode activations x [n, d_in] (any array; a np.memmap is read one chunk at a time) into an
    .mdlc file at dst, atomically; ``inputs``: paths dst must not replace; ``what`` names x in errors.

    Returns {"samples": n, "bytes": size of the file, "warnings": lines for the user (scale.scale_warning
    on the first chunk: an input on another scale than the SAE's training data)}."""
    x = _check_rows(x, codec.decoder.d_in, what)
    n = len(x)
    warnings = [w for w in (scale_warning(x[:chunk_size], codec.data_stats),) if w]

    def chunks() -> Iterator[np.ndarray]:
        for s in range(0, n, chunk_size):
            yield _finite_chunk(x, s, s + chunk_size, what)

    with atomic_output(dst, inputs, overwrite) as tmp:
        with open(tmp, "wb") as f:
            codec.write(f, chunks(), n, chunk_size, embed_model, what=what)
    return {"samples": n, "bytes": Path(dst).stat().st_size, "warnings": warnings}


def payload_bits(data: bytes | BinaryIO) -> int:
    """The payload of an .mdlc file (its bytes, or a binary file at its start): the bits of its coded
    chunks, 32 per ANS word, without magic, header, model section or chunk framing. CRCs are checked."""
    reader = Reader.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)
    return sum(32 * len(words) for _, words in reader.chunks())


def open_codec(reader: Reader, codec: Codec | None) -> Codec:
    """The codec to decode a file with: the one given (checked by fingerprint) or the file's own."""
    if codec is not None:
        return codec.for_header(reader.header)
    if reader.model_bytes is None:
        raise CodecError("this file does not embed its model: pass the model it was encoded with (-m MODEL)")
    own = Codec.from_model_section(reader.model_bytes)
    own.check_header(reader.header)
    return own


def decode_file(src: str | Path, dst: str | Path, codec: Codec | None = None, latents: bool = False,
                overwrite: bool = False) -> dict:
    """Decode an .mdlc file to a .npy of activations [n, d_in] float32, or with ``latents`` to a .npz
    of the quantised latents in scipy's CSR layout, so ``scipy.sparse.load_npz`` reads it: format
    "csr", shape [n, d_sae], indptr [n+1] int64, indices [nnz] int32, data [nnz] float32 = bins *
    step; beside them bins [nnz] int32 and step [d_sae] float32 (the quantiser's).

    The .npy grows as chunks are decoded and checked; memory holds the model, the file's bytes being
    read and one decoded chunk (latents too with ``latents``). Returns {"samples": n, "output": str(dst)}."""
    with open(src, "rb") as f:
        reader = Reader.open(f)
        codec = open_codec(reader, codec)
        h = reader.header
        with atomic_output(dst, (src,), overwrite) as tmp:
            if latents:
                parts = list(codec.read_codes(reader))
                codes = SparseCodes.concat(parts) if parts else SparseCodes(
                    np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32), h.d_sae)
                with open(tmp, "wb") as out:
                    np.savez(out, format=np.array(b"csr"), shape=np.array([codes.n, h.d_sae], np.int64),
                             indptr=codes.indptr, indices=codes.indices, data=codec.quantiser.values(codes),
                             bins=codes.bins, step=codec.quantiser.step)
            else:  # the .npy grows as chunks are decoded and checked, never to the header's n unverified
                with open(tmp, "wb") as out:
                    np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False,
                                                              "shape": (h.n, h.d_in)})
                    for codes in codec.read_codes(reader):
                        out.write(np.ascontiguousarray(codec.reconstruct(codes), dtype="<f4").data)
    return {"samples": h.n, "output": str(dst)}


def inspect_file(src: str | Path, codec: Codec | None = None, against: np.ndarray | None = None) -> dict:
    """What an .mdlc file holds and what its bits are spent on, in the README's vocabulary.

    ``bits`` (whole file) and ``bits_per_sample``: header, model (the embedded model section, 0 if
    none), payload (the coded chunks) and file (every byte); with a model (given or embedded) also
    activity and values (the payload measured on the stream, by part) and cross_entropy (the ideal
    code length of the file's symbols under the tables), and beside them
    ``model_entropy_bits_per_sample`` (the tables' expected bits per sample: activity, values,
    total) and ``decoder_bits`` (the two-part term, whole decoder). With ``against`` (the original
    activations [n, d_in]): MSE and FVU of the reconstruction (CodecError if its shape differs).
    """
    size = Path(src).stat().st_size
    with open(src, "rb") as f:
        reader = Reader.open(f)
        h = reader.header
        model_bits = 8 * (len(reader.model_bytes) + 12) if reader.model_bytes is not None else 0
        info: dict = {"file": str(src), "samples": h.n, "d_in": h.d_in, "d_sae": h.d_sae, "chunks": h.n_chunks,
                      "bytes": size, "self_contained": reader.model_bytes is not None,
                      "sae_fingerprint": h.sae_fingerprint}
        if codec is None and reader.model_bytes is None:
            f.seek(0)
            payload = payload_bits(f)
            info["bits"] = {"header": 8 * size - model_bits - payload, "model": model_bits, "payload": payload}
            return _per_sample(info, h.n)
        codec = open_codec(reader, codec)
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
        for codes in codec.read_codes(reader, stats):
            ideal += codec.chunk_coder.ideal_bits(codes)["total"]
            if x is not None:
                orig = np.asarray(x[row:row + codes.n], dtype=np.float64)
                sq_err += float(((codec.reconstruct(codes) - orig) ** 2).sum())
                s1 += orig.sum(0)
                s2 += float((orig ** 2).sum())
            row += codes.n
    payload = stats["activity_bits"] + stats["value_bits"]
    info["bits"] = {"header": 8 * size - model_bits - payload, "model": model_bits,
                    "activity": stats["activity_bits"], "values": stats["value_bits"], "payload": payload,
                    "cross_entropy": ideal}
    info["model_entropy_bits_per_sample"] = codec.entropy_model.expected_bits_per_sample()
    info["decoder_bits"] = codec.decoder.bits()
    forest = codec.entropy_model.hierarchy
    if forest is not None:
        info["hierarchy"] = {"kind": forest.kind, "edges": forest.n_edges, "table_bits": codec.hierarchy_bits()}
    if x is not None and h.n:
        info["mse"] = sq_err / (h.n * h.d_in)
        total_var = s2 - float((s1 ** 2).sum()) / h.n
        info["fvu"] = sq_err / total_var if total_var > 0 else float("nan")
    return _per_sample(info, h.n)


def _per_sample(info: dict, n: int) -> dict:
    info["bits"]["file"] = 8 * info["bytes"]
    info["bits_per_sample"] = {k: v / max(n, 1) for k, v in info["bits"].items()}
    return info


def codec_for_file(src: str | Path, model_dir: str | Path, device: str = "cpu") -> Codec:
    """The codec in ``model_dir`` with the table set the .mdlc file ``src`` names in its header (the
    current set, or one kept in the folder's archive), so that files coded before a refit, or by
    ``measure``, decode with the model folder."""
    with open(src, "rb") as f:
        fingerprint = Reader.open(f).header.entropy_model_fingerprint
    return Codec.load(model_dir, device, tables=fingerprint if isinstance(fingerprint, str) else None)
