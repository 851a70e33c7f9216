"""Chunks coded in parallel: the chunk tasks, and the engines that run them (here, local processes, a
Dask cluster), so that a serial run, ``--workers N`` and ``--scheduler ADDRESS`` run the same
functions and write the same bytes.

    with engine(workers=4) as run:                      # or engine(scheduler="tcp://host:8786")
        for words in run.map(encode_chunk, tasks):      # in the tasks' order, a bounded number in flight
            writer.write_chunk(...)

A task names what a worker needs, not the data: the codec as a ``CodecRef`` (the model folder, or the
self-contained .mdlc file whose model section holds it, and the fingerprints that pick its table set)
and the input as a ``RowSource`` (a function and its arguments, such as the data layer's
``load_rows(spec, split)``, that opens the rows where the worker runs: a .npy memory-mapped, a shard
folder read lazily; an input held only in this process's memory travels as each chunk's rows
instead). Each worker process loads a codec once per run and keeps it, and opens the source for each
chunk it encodes, dropping it once the chunk's rows are read (a memory-mapped file's pages that stayed
mapped would count in the worker's memory, up to two shards of a shard folder: ``_read``); torch runs
on one thread in each. Run in this process (``engine()``), a task holds the codec and
the array themselves. Decoding tasks carry the chunk's ANS words (a few bits per latent), which the
parent reads and checks in order (CRCs, footer, whole-file CRC) or picks from the footer's index.

Paths in a task must name the same files on every worker: on a cluster, the model folder, the input
and a self-contained .mdlc being decoded must lie on a filesystem every worker sees.

A worker that dies: a local pool fails the run (CodecError, one line; ``files`` then writes nothing);
Dask reschedules the chunks of a lost worker on the others and fails the run (CodecError) only when a
chunk has been on ``distributed.scheduler.allowed-failures`` (default 3) workers that died.
"""

from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import multiprocessing
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from mdlcodec.codec.codec import Codec
from mdlcodec.codec.format.container import VERSION, Header, Reader
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.errors import CodecError, MdlcodecError

DEFAULT_SCHEDULER_TIMEOUT = 10.0
"""Seconds to wait for a Dask scheduler to answer before giving up."""

DASK_EXTRA = "pip install 'mdlcodec[dask]'"

SLICE_BYTES = 32 << 20
"""At most this many bytes of activations are rebuilt at once: a chunk whose rows take more is sent
back as latents and rebuilt by its reader in slices (``files._decoded``)."""


# -- what a worker needs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CodecRef:
    """How a worker loads the codec of a run: from the model folder ``path`` (``Codec.load``, on
    ``device``; with its encoder, the torch SAE, only if ``encoder``: a decoding worker does without),
    or with ``embedded`` from the model section of the .mdlc file ``path``; then the table set of
    ``header`` (``Codec.for_header``: the current, flat or an archived set)."""

    path: str
    header: Header
    embedded: bool = False
    device: str = "cpu"
    encoder: bool = True

    @classmethod
    def of(cls, codec: Codec, header: Header, device: str = "cpu", encoder: bool = True) -> "CodecRef":
        """The reference to a codec loaded from a model folder (with or without its encoder: the
        workers load their own); CodecError if it was not."""
        if codec.model_dir is None:
            raise CodecError("workers load the codec from its model folder, and this codec has none "
                             "(load it with Codec.load)")
        return cls(str(Path(codec.model_dir).resolve()), header, False, device, encoder)

    def key(self) -> tuple:
        h = self.header
        return (self.path, self.embedded, self.device, self.encoder, h.sae_fingerprint, h.entropy_model_fingerprint,
                h.file_id)

    def load(self) -> Codec:
        if self.embedded:
            with open(self.path, "rb") as f:
                reader = Reader.open(f)
            if reader.header.file_id != self.header.file_id or reader.model_bytes is None:
                raise CodecError(f"{self.path} changed while it was being decoded")
            codec = Codec.from_model_section(reader.model_bytes, self.header)
            codec.check_header(self.header)
            return codec
        return Codec.load(self.path, self.device, tables=self.header.entropy_model_fingerprint,
                          encoder=self.encoder).for_header(self.header)


@dataclass(frozen=True)
class RowSource:
    """Where a worker reads a run's input: ``opener(*args)`` returns the rows [n, d_in] (any matrix
    that slices rows lazily: a memory-mapped .npy, a data.shards.ShardedRows), opened for each chunk
    (a few milliseconds: a shard folder's manifest and shard headers). ``opener`` must be a module-level function (it is sent by name), ``args`` plain values."""

    opener: Callable[..., Any]
    args: tuple = ()

    def open(self):
        return self.opener(*self.args)


@dataclass(frozen=True)
class EncodeTask:
    """Encode rows start:stop of the run's input (the file's rows) as chunk ``index``."""

    run: str  # a token new for every run: what a worker keeps is for one run only
    codec: Codec | CodecRef
    rows: Any  # RowSource, or (in this process, or where there is no source) the matrix itself
    start: int
    stop: int
    index: int
    n: int  # rows of the whole input, checked where the worker opens it
    what: str = "activations"
    offset: int = 0  # the file's row of rows[0] when ``rows`` holds only this chunk's rows


@dataclass(frozen=True)
class DecodeTask:
    """Decode chunk ``index`` (``n_rows`` rows, its ANS ``words``, in the chunk stream of format
    ``version``) and keep its rows keep_start:keep_stop; ``reconstruct``: return activations instead of
    quantised latents."""

    run: str
    codec: Codec | CodecRef
    index: int
    n_chunks: int
    n_rows: int
    words: np.ndarray
    keep_start: int
    keep_stop: int
    reconstruct: bool = False
    version: int = VERSION


def new_run() -> str:
    return os.urandom(8).hex()


_codecs: dict[tuple, Codec] = {}


def _codec(ref: Codec | CodecRef) -> Codec:
    """The task's codec: itself, or loaded once per worker process (the last few kept)."""
    if not isinstance(ref, CodecRef):
        return ref
    key = ref.key()
    codec = _codecs.get(key)
    if codec is None:
        _one_thread()
        codec = ref.load()
        while len(_codecs) >= 4:
            _codecs.pop(next(iter(_codecs)))
        _codecs[key] = codec
    return codec


def _read(task: EncodeTask) -> np.ndarray:
    """The task's rows start:stop as float32 (``finite_rows``): from the array it holds, or from its
    source opened for this chunk alone, so that no page of a memory-mapped input stays mapped in the
    worker once the rows are copied out (mapped pages of the page cache count in its PSS and RSS)."""
    if not isinstance(task.rows, RowSource):
        return finite_rows(task.rows, task.start, task.stop, task.what, task.offset)
    x = task.rows.open()
    if len(x) != task.n:
        raise CodecError(f"{task.what} has {len(x)} rows where the worker reads it, {task.n} where the run began")
    part = finite_rows(x, task.start, task.stop, task.what, task.offset)
    del x  # unmapped here (a memory-mapped .npy's rows are copied out first), not when the next chunk opens it
    return part if part.flags.owndata else part.copy()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _start_worker(lifeline) -> None:
    """A local worker's start: torch on one thread, and a thread that ends the worker as soon as
    ``lifeline`` (the read end of a pipe whose write end only the parent holds) reaches EOF, that is
    when the parent ends, however it ends (``kill -9`` included): the pipes a pool's workers share keep
    one another open, so without it they outlive a killed parent, holding its caller's pipes."""
    _one_thread()

    def watch() -> None:
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="mdlcodec-lifeline", daemon=True).start()


# -- the chunk tasks: the same functions whatever runs them ----------------------------------------
def finite_rows(x, start: int, stop: int, what: str, offset: int = 0) -> np.ndarray:
    """Rows start:stop of x as float32; CodecError naming the row of the file (x's first row being
    the file's row ``offset``) and the column of the first NaN or Inf."""
    part = np.asarray(x[start:stop], dtype=np.float32)
    bad = ~np.isfinite(part)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(part[r, c]) else "Inf"
        raise CodecError(f"{what} contains {kind} (first at row {offset + start + r}, column {c})")
    return part


def encode_chunk(task: EncodeTask) -> np.ndarray:
    """The chunk's ANS words [n_words] uint32 (``Codec.chunk_words``), read where the task runs; in a
    worker, the heap's free pages are then given back (``_trim_heap``)."""
    words = _codec(task.codec).chunk_words(_read(task), task.offset + task.start, task.what)
    if isinstance(task.codec, CodecRef):
        _trim_heap()
    return words


_malloc_trim: Any = None


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's malloc_trim; nothing where there is
    none). A worker's chunk allocates and frees its batches' pre-activations, its rows and the
    coder's arrays; glibc keeps the freed pages, and the holes they leave grew a worker by about
    400 MB over a few chunks of bench/scale_store.py's encode (D = 16,384), twice what it needs
    between chunks, for about 3% more CPU time when trimmed after each."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


def decode_chunk(task: DecodeTask) -> SparseCodes:
    """The chunk's quantised latents, rows keep_start:keep_stop, after the checks of
    ``Codec.read_codes`` on the whole chunk (``Codec.chunk_codes``)."""
    codes = _codec(task.codec).chunk_codes(task.words, task.n_rows, f"chunk {task.index + 1} of {task.n_chunks}",
                                           version=task.version)
    return slice_codes(codes, task.keep_start, task.keep_stop)


def decode_rows(task: DecodeTask) -> SparseCodes | np.ndarray:
    """``decode_chunk``, then with ``task.reconstruct`` the activations [rows, d_in] float32."""
    codes = decode_chunk(task)
    return _codec(task.codec).reconstruct(codes) if task.reconstruct else codes


def slice_codes(codes: SparseCodes, a: int, b: int) -> SparseCodes:
    """Rows a:b (0 <= a <= b <= n) of CSR codes."""
    if a == 0 and b == codes.n:
        return codes
    lo, hi = int(codes.indptr[a]), int(codes.indptr[b])
    return SparseCodes(codes.indptr[a:b + 1] - lo, codes.indices[lo:hi], codes.bins[lo:hi], codes.d_sae)


# -- engines ----------------------------------------------------------------------------------------
class Engine:
    """Runs tasks in this process; ``map`` yields results in the tasks' order. ``local``: whether a
    task may hold this process's objects (a codec, an array) instead of references."""

    local = True
    in_flight = 1

    def map(self, fn: Callable, tasks: Iterable) -> Iterator:
        for task in tasks:
            yield fn(task)

    def close(self, abort: bool = False) -> None:
        """Release the workers; ``abort``: the run failed or was interrupted, stop what they do."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(abort=kind is not None)


class _Windowed(Engine):
    """An engine that keeps at most ``in_flight`` tasks submitted and yields results in order."""

    local = False

    def _submit(self, fn: Callable, task):
        raise NotImplementedError

    def _result(self, future, task):
        raise NotImplementedError

    def _cancel(self, futures) -> None:
        for f in futures:
            f.cancel()

    def map(self, fn: Callable, tasks: Iterable) -> Iterator:
        window: collections.deque = collections.deque()
        tasks = iter(tasks)
        try:
            for task in tasks:
                window.append((self._submit(fn, task), task))
                if len(window) >= self.in_flight:
                    yield self._result(*window.popleft())
            while window:
                yield self._result(*window.popleft())
        finally:
            self._cancel([f for f, _ in window])


def _what(task) -> str:
    n = getattr(task, "n_chunks", None)
    return f"chunk {task.index + 1}" + (f" of {n}" if n else "")


def _context() -> multiprocessing.context.BaseContext:
    """'forkserver' where there is one (a server process, started once, imports this module and torch;
    workers fork from it, inheriting nothing of the caller's state), else 'spawn'."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


class ProcessEngine(_Windowed):
    """``workers`` local processes (``_context``), at most 2 tasks per worker in flight; each ends
within a moment of this process, however it ends (``_start_worker``)."""

    def __init__(self, workers: int):
        self.workers, self.in_flight = workers, 2 * workers
        self._lifeline, keep = multiprocessing.Pipe(duplex=False)  # workers end when ``keep`` closes
        self._keep = keep
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=_context(), initializer=_start_worker,
                                                           initargs=(self._lifeline,))

    def _submit(self, fn, task):
        try:
            return self.pool.submit(fn, task)
        except BrokenProcessPool:
            raise self._died(task) from None

    def _died(self, task) -> CodecError:
        return CodecError(f"a worker process died while coding {_what(task)} (killed, or out of memory?); "
                          "the run was stopped")

    def _result(self, future, task):
        try:
            return future.result()
        except BrokenProcessPool:
            raise self._died(task) from None

    def close(self, abort: bool = False) -> None:
        if abort:  # an error or a signal: the chunks being coded are not wanted
            stop = getattr(self.pool, "terminate_workers", None)  # Python 3.14
            if stop is not None:
                stop()
            else:
                for p in list((getattr(self.pool, "_processes", None) or {}).values()):
                    if p.is_alive():
                        p.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._keep.close()
        self._lifeline.close()


class DaskEngine(_Windowed):
    """The tasks on a Dask distributed cluster at ``address`` (its scheduler), at most 2 per worker
    thread in flight (at least 4). CodecError, one line, if it does not answer within ``timeout``
    seconds; MdlcodecError naming the extra if dask.distributed is not installed."""

    def __init__(self, address: str, timeout: float = DEFAULT_SCHEDULER_TIMEOUT):
        try:
            from dask.distributed import Client
        except ImportError:
            raise MdlcodecError(f"--scheduler needs dask.distributed, which is not installed: {DASK_EXTRA}") from None
        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            raise CodecError(f"the Dask scheduler at {address} did not answer within {timeout:g} s ({why})",
                             param="scheduler") from None
        threads = sum(self.client.nthreads().values())
        self.in_flight = max(4, 2 * threads)

    def _submit(self, fn, task):
        return self.client.submit(fn, task, pure=False)

    def _result(self, future, task):
        from distributed import KilledWorker

        try:
            return future.result()
        except KilledWorker:
            raise CodecError(f"Dask workers died coding {_what(task)} (each try of it killed its worker); "
                             "the run was stopped") from None

    def _cancel(self, futures) -> None:
        if futures:
            self.client.cancel(futures)

    def close(self, abort: bool = False) -> None:
        self.client.close()


def engine(workers: int = 1, scheduler: str | None = None,
           scheduler_timeout: float = DEFAULT_SCHEDULER_TIMEOUT) -> Engine:
    """The engine for a run: a Dask cluster if ``scheduler`` (an address, tcp://host:8786), else
    ``workers`` local processes if more than 1, else this process."""
    if scheduler is not None and workers > 1:
        raise MdlcodecError("give --workers or --scheduler, not both (the cluster's workers do the work)")
    if scheduler is not None:
        return DaskEngine(scheduler, scheduler_timeout)
    if workers > 1:
        return ProcessEngine(workers)
    return Engine()
