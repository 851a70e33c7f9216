"""Activation shard folders: many .npy files of a fixed number of rows and one manifest, read as one
lazy matrix [n, d] shard by shard (never loaded whole).

A shard folder, as ``mdlcodec harvest`` writes it::

    OUT_DIR/manifest.json      {"format": "mdlcodec-activation-shards", "format_version": 1, "d": 384,
                                "dtype": "float32", "total_tokens": n, "shard_tokens": 65536,
                                "shards": [{"file": "shard-00000.npy", "rows": 65536}, ...],
                                ... what made it: model, layer, hook point, text sources, version}
    OUT_DIR/shard-00000.npy    [shard_tokens, d] of dtype; the last shard may be shorter

``open_shards(folder)`` checks the manifest and every shard's header and size against it (a missing,
truncated or mismatched shard is one DataError line naming the shard) and returns a ``ShardedRows``:
``shape``, ``dtype``, ``len`` and row indexing (``x[a:b]`` reads only the shards that hold rows a to
b, each memory-mapped, at most two at a time, and returns an ndarray), so code that slices rows
(encode_file, check_finite, array_stats) streams it; ``np.asarray(x)`` reads it whole; training reads it
in a shuffled stream (``data.stream``). ``x.rows(a, b)`` is a
lazy sub-view (the train and test splits of a Dataset).

A shard folder may come from elsewhere. The manifest is read by ``core.jsonio`` (size, depth,
numbers and keys checked; one DataError line otherwise) and names shards by plain file names in the
folder only (no "/", no ".."). A shard, or the manifest, may be a symbolic link, also to a file
outside the folder (so that shards kept elsewhere can be linked in): the link is followed and its
target must be a regular file, as every file read here must be (``core.paths.regular_file``: a
FIFO, socket, device or folder in its place is one line, not a read that blocks for ever).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mdlcodec.core.errors import DataError
from mdlcodec.core.jsonio import read_json
from mdlcodec.core.paths import regular_file
from mdlcodec.data.dataset import Dataset, check_finite, split_index

MANIFEST = "manifest.json"
FORMAT = "mdlcodec-activation-shards"
FORMAT_VERSION = 1
DTYPES = ("float32", "float16")
OPEN_MAPS = 2  # shards kept memory-mapped at once (a read straddling two shards maps both)


def is_shard_folder(path: str | Path) -> bool:
    """True if path is a folder holding a manifest.json (whether valid, or a regular file, or not: open_shards says)."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).exists()


def shard_name(i: int) -> str:
    """File name of the i-th shard."""
    return f"shard-{i:05d}.npy"


class ShardedRows:
    """Rows of several same-width matrices (the shards, memory-mapped on first use) as one lazy
    matrix [n, d]; reads convert to ``dtype`` (the shards' own unless given).

    ``x[i]`` (one row), ``x[a:b]`` / ``x[a:b:s]`` (rows; step any), ``x[rows, cols]``, ``x[int array]``
    return ndarrays holding only those rows; ``x.rows(a, b)`` returns a lazy ShardedRows of rows a:b;
    ``np.asarray(x)`` reads every row."""

    ndim = 2

    def __init__(self, files: list[Path], counts: list[int], d: int, stored_dtype: str | np.dtype,
                 dtype: str | np.dtype | None = None, start: int = 0, stop: int | None = None,
                 name: str = "shards", _maps: dict | None = None) -> None:
        self.files = [Path(f) for f in files]
        self.counts = [int(c) for c in counts]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        self.d = int(d)
        self.stored_dtype = np.dtype(stored_dtype)
        self.dtype = np.dtype(dtype) if dtype is not None else self.stored_dtype
        total = int(self.offsets[-1])
        self.start = int(start)
        self.stop = total if stop is None else int(stop)
        if not 0 <= self.start <= self.stop <= total:
            raise ValueError(f"rows {start}:{stop} out of 0:{total}")
        self.name = name
        self._maps = {} if _maps is None else _maps  # shared by sub-views

    @property
    def shape(self) -> tuple[int, int]:
        return (self.stop - self.start, self.d)

    @property
    def size(self) -> int:
        return self.shape[0] * self.d

    @property
    def n_shards(self) -> int:
        return len(self.files)

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        return (f"ShardedRows({self.name}: rows {self.start}:{self.stop} of {int(self.offsets[-1])}, d {self.d}, "
                f"{len(self.files)} shards, dtype {self.dtype})")

    def rows(self, start: int = 0, stop: int | None = None) -> ShardedRows:
        """The lazy view of rows start:stop of this view (non-negative, clipped like a slice)."""
        a, b, _ = slice(start, stop).indices(len(self))
        b = max(a, b)
        return ShardedRows(self.files, self.counts, self.d, self.stored_dtype, self.dtype, self.start + a,
                           self.start + b, self.name, self._maps)

    def astype(self, dtype, copy: bool = True) -> ShardedRows:
        """The same rows read as ``dtype`` (lazy: each read converts)."""
        return ShardedRows(self.files, self.counts, self.d, self.stored_dtype, dtype, self.start, self.stop,
                           self.name, self._maps)

    def _map(self, i: int) -> np.ndarray:
        """Shard i memory-mapped; only the last ``OPEN_MAPS`` shards stay mapped (shared by sub-views),
        so that a pass over every shard keeps at most that many shards' pages resident, not all."""
        m = self._maps.get(i)
        if m is None:
            try:
                m = np.load(self.files[i], mmap_mode="r", allow_pickle=False)
            except Exception as e:  # removed or damaged after open_shards checked it
                raise DataError(f"{self.name}: cannot read shard {self.files[i].name}: {e}") from None
            while len(self._maps) >= OPEN_MAPS:
                del self._maps[next(iter(self._maps))]  # the oldest; unmapped once no read holds it
            self._maps[i] = m
        return m

    def _read_range(self, a: int, b: int) -> np.ndarray:
        """Rows a:b (of this view, 0 <= a <= b <= len) as a new ndarray of self.dtype."""
        out = np.empty((b - a, self.d), dtype=self.dtype)
        lo, hi = self.start + a, self.start + b
        i = max(0, int(np.searchsorted(self.offsets, lo, side="right")) - 1)
        pos = 0
        while lo < hi:
            s0, s1 = int(self.offsets[i]), int(self.offsets[i + 1])
            take = min(hi, s1) - lo
            if take > 0:
                out[pos:pos + take] = self._map(i)[lo - s0:lo - s0 + take]
                pos += take
                lo += take
            i += 1
        return out

    def _read_indices(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        glob = idx + self.start
        shard = np.searchsorted(self.offsets, glob, side="right") - 1
        out = np.empty((len(idx), self.d), dtype=self.dtype)
        for i in np.unique(shard):
            sel = shard == i
            out[sel] = self._map(int(i))[glob[sel] - self.offsets[i]]
        return out

    def _rows(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            k = int(key)
            if not -len(self) <= k < len(self):
                raise IndexError(f"row {k} out of range for {len(self)} rows")
            k += len(self) if k < 0 else 0
            return self._read_range(k, k + 1)[0]
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            if step == 1:
                return self._read_range(a, max(a, b))
            return self._read_indices(np.arange(a, b, step))
        if key is Ellipsis:
            return self._read_range(0, len(self))
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (len(self),):
                raise IndexError(f"boolean index of shape {arr.shape} for {len(self)} rows")
            return self._read_indices(np.flatnonzero(arr))
        if arr.dtype.kind in "iu":
            return self._read_indices(arr.reshape(-1)).reshape(*arr.shape, self.d)
        raise IndexError(f"cannot index rows with {type(key).__name__}")

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            if not key or len(key) > 2:
                raise IndexError(f"{len(key)} indices for a 2-D matrix")
            out = self._rows(key[0])
            if len(key) == 1:
                return out
            return out[..., key[1]]
        return self._rows(key)

    def __iter__(self):
        step = max(1, (64 << 20) // max(1, self.d * self.dtype.itemsize))
        for s in range(0, len(self), step):
            yield from self._read_range(s, min(len(self), s + step))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        x = self._read_range(0, len(self))
        return x if dtype is None else x.astype(dtype, copy=False)


def _fail(folder: Path, what: str) -> DataError:
    return DataError(f"{folder}: {what}")


def read_manifest(folder: str | Path) -> dict:
    """The manifest of a shard folder, its fields checked (not the shards); DataError naming the fault."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    path = folder / MANIFEST
    if not path.exists():
        raise _fail(folder, f"no {MANIFEST}: not a shard folder (`mdlcodec harvest` writes one)")
    m = read_json(path, error=DataError)
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise _fail(folder, f"{MANIFEST} is not a manifest of {FORMAT} (format {m.get('format') if isinstance(m, dict) else None!r})")
    if m.get("format_version") != FORMAT_VERSION:
        raise _fail(folder, f"{MANIFEST} has format_version {m.get('format_version')!r}; this mdlcodec reads {FORMAT_VERSION}")
    d, dtype, shards = m.get("d"), m.get("dtype"), m.get("shards")
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise _fail(folder, f"{MANIFEST}: d is {d!r}; expected a positive integer")
    if dtype not in DTYPES:
        raise _fail(folder, f"{MANIFEST}: dtype is {dtype!r}; expected one of {', '.join(DTYPES)}")
    if not isinstance(shards, list) or not shards:
        raise _fail(folder, f"{MANIFEST} lists no shards")
    seen = set()
    for i, s in enumerate(shards):
        name = s.get("file") if isinstance(s, dict) else None
        rows = s.get("rows") if isinstance(s, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise _fail(folder, f"{MANIFEST}: shard {i} has no plain file name ({name!r})")
        if name in seen:
            raise _fail(folder, f"{MANIFEST}: shard {name} is listed twice")
        seen.add(name)
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
            raise _fail(folder, f"{MANIFEST}: shard {name} has rows {rows!r}; expected a positive integer")
    total = sum(s["rows"] for s in shards)
    if m.get("total_tokens") != total:
        raise _fail(folder, f"{MANIFEST}: total_tokens {m.get('total_tokens')!r} is not the sum of the shards' "
                            f"rows ({total})")
    return m


def _check_shard(folder: Path, name: str, rows: int, d: int, dtype: np.dtype) -> Path:
    path = folder / name
    regular_file(path, f"{folder}: shard {name}", DataError)  # followed if a link; a FIFO would block the read
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, stored = read_header(f)
            data_start = f.tell()
    except Exception as e:  # not a .npy, or cut inside its header
        raise _fail(folder, f"shard {name} is not a readable .npy file ({e})") from None
    if len(shape) != 2 or shape[1] != d:
        raise _fail(folder, f"shard {name} has shape {tuple(shape)}; the manifest says [{rows}, {d}]")
    if shape[0] != rows:
        raise _fail(folder, f"shard {name} has {shape[0]} rows; the manifest says {rows}")
    if np.dtype(stored) != dtype:
        raise _fail(folder, f"shard {name} has dtype {np.dtype(stored)}; the manifest says {dtype}")
    if fortran:
        raise _fail(folder, f"shard {name} is stored in Fortran order; expected C order")
    want = data_start + rows * d * dtype.itemsize
    size = os.path.getsize(path)
    if size < want:
        raise _fail(folder, f"shard {name} is truncated ({size} bytes; its header says {want})")
    if size > want:
        raise _fail(folder, f"shard {name} has {size - want} bytes past its data ({size} bytes; expected {want})")
    return path


def open_shards(folder: str | Path, dtype: str | np.dtype | None = None) -> ShardedRows:
    """The rows of a shard folder as a lazy ShardedRows (read as ``dtype``, the shards' own if None),
    after checking the manifest and every shard's existence, header (width, dtype, row count) and
    size against it. Raises DataError with one line naming the folder, the shard and the problem."""
    folder = Path(folder)
    m = read_manifest(folder)
    d, stored = m["d"], np.dtype(m["dtype"])
    files = [_check_shard(folder, s["file"], s["rows"], d, stored) for s in m["shards"]]
    return ShardedRows(files, [s["rows"] for s in m["shards"]], d, stored, dtype, name=str(folder))


class ShardWriter:
    """Writes rows [k, d] as shards of ``shard_tokens`` rows into an existing folder (the last shard
    may be shorter) and, on ``finish(**fields)``, the manifest with those fields. Rows are cast to
    ``dtype`` (float32 or float16) as they come; a value that float16 cannot hold is a DataError."""

    def __init__(self, folder: str | Path, d: int, dtype: str = "float32", shard_tokens: int = 65536) -> None:
        if dtype not in DTYPES:
            raise DataError(f"dtype {dtype!r}; expected one of {', '.join(DTYPES)}", param="dtype")
        if shard_tokens < 1:
            raise DataError(f"shard_tokens is {shard_tokens}; expected at least 1", param="shard_tokens")
        self.folder, self.d, self.dtype, self.shard_tokens = Path(folder), int(d), dtype, int(shard_tokens)
        self.pending: list[np.ndarray] = []  # rows not yet written, fewer than shard_tokens in all
        self.fill = 0
        self.shards: list[dict] = []
        self.total = 0

    def add(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"rows of shape {rows.shape}; expected [k, {self.d}]")
        with np.errstate(over="ignore"):
            cast = rows.astype(self.dtype)
        if self.dtype == "float16" and not np.isfinite(cast).all() and np.isfinite(rows).all():
            raise DataError(f"activations up to {float(np.abs(rows).max()):.4g} overflow float16", param="dtype")
        while len(cast):
            take = min(len(cast), self.shard_tokens - self.fill)
            self.pending.append(cast[:take])
            self.fill += take
            cast = cast[take:]
            if self.fill == self.shard_tokens:
                self._flush()

    def _flush(self) -> None:
        if self.fill == 0:
            return
        name = shard_name(len(self.shards))
        np.save(self.folder / name, np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0])
        self.shards.append({"file": name, "rows": self.fill})
        self.total += self.fill
        self.pending, self.fill = [], 0

    def finish(self, **fields) -> dict:
        """Write the last (short) shard and the manifest (``fields`` plus the format's own); returns it."""
        self._flush()
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **fields, "d": self.d, "dtype": self.dtype,
                    "total_tokens": self.total, "shard_tokens": self.shard_tokens, "shards": self.shards}
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        return manifest


def load_shard_dataset(folder: str | Path) -> Dataset:
    """A shard folder as a Dataset: float32 (float16 shards converted as they are read), NaN/Inf
    checked shard by shard, the first rows train and the last n // 5 rows of the concatenated shards
    test; train and test stay lazy ShardedRows views."""
    spec = str(folder)
    x = open_shards(folder, dtype=np.float32)
    check_finite(x, spec)
    n_train = split_index(len(x), spec)
    return Dataset(name=f"{spec} ({n_train} train / {len(x) - n_train} test, {x.n_shards} shards)", spec=spec,
                   train=x.rows(0, n_train), test=x.rows(n_train))
