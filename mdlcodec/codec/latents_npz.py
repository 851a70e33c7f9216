"""Decoded latents as an .npz in scipy's CSR layout, written as a file's chunks are decoded: memory
holds one chunk, the arrays grow in spill files beside the output (``SPILL + .indptr`` and so on),
which are reserved where their size is known and removed whatever happens."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from mdlcodec.codec.rate.quantiser import Quantiser
from mdlcodec.codec.sparse import SparseCodes


def write_csr_npz(out: BinaryIO, parts: Iterator[SparseCodes], spill: Path, n: int, d_sae: int, quantiser: Quantiser) -> None:
    """The .npz of ``files.decode_file``'s ``latents`` (n rows over d_sae features; values bins * the
    quantiser's steps) into the open file ``out``, written as the chunks' codes arrive: each array
    grows in a file beside the output (``spill`` + its name), then the zip takes them in pieces, so
    that memory holds one chunk whatever the file holds. The row pointers' file is reserved at its
    full size first (``_reserve``: a full disk or a file-size limit fails before any chunk is
    decoded); every spill file is closed and removed whatever happens (an error writing or closing
    one included)."""
    import zipfile

    names = {"indptr": "<i8", "indices": "<i4", "data": "<f4", "bins": "<i4"}
    files: dict[str, BinaryIO] = {}
    try:
        for k in names:
            files[k] = open(f"{spill}.{k}", "w+b")
        _reserve(files["indptr"], 8 * (n + 1))
        files["indptr"].write(np.zeros(1, "<i8").tobytes())
        nnz = 0
        for codes in parts:
            files["indptr"].write((codes.indptr[1:] + nnz).astype("<i8").tobytes())
            files["indices"].write(codes.indices.astype("<i4").tobytes())
            files["bins"].write(codes.bins.astype("<i4").tobytes())
            files["data"].write(quantiser.values(codes).astype("<f4").tobytes())
            nnz += codes.nnz
        small = {"format": np.array(b"csr"), "shape": np.array([n, d_sae], np.int64), "step": quantiser.step}
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for key, value in small.items():
                with z.open(f"{key}.npy", "w") as m:
                    np.lib.format.write_array(m, value, allow_pickle=False)
            for key, dtype in names.items():
                f, length = files[key], (n + 1 if key == "indptr" else nnz)
                with z.open(f"{key}.npy", "w", force_zip64=True) as m:
                    np.lib.format.write_array_header_2_0(m, {"descr": dtype, "fortran_order": False, "shape": (length,)})
                    f.seek(0)
                    _copy(f, m, 8 * (n + 1) if key == "indptr" else None)
    finally:
        for key in names:
            try:
                if key in files:
                    files[key].close()  # flushes: can fail on a full disk, and must not stop the others
            except OSError:
                pass
            finally:
                Path(f"{spill}.{key}").unlink(missing_ok=True)


def _reserve(f: BinaryIO, nbytes: int) -> None:
    """Reserve ``nbytes`` for the open file f where the system can (posix_fallocate: an OSError now,
    ENOSPC or EFBIG, rather than part-way through); elsewhere nothing."""
    if nbytes > 0 and hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(f.fileno(), 0, nbytes)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise
            # EOPNOTSUPP, EINVAL: a filesystem without it; the writes find out as they go


def _copy(src: BinaryIO, dst: BinaryIO, nbytes: int | None) -> None:
    """Copy src from its position to dst in pieces: ``nbytes`` of it, or to its end (None)."""
    left = nbytes
    while left is None or left > 0:
        piece = src.read(1 << 20 if left is None else min(1 << 20, left))
        if not piece:
            break
        dst.write(piece)
        if left is not None:
            left -= len(piece)
