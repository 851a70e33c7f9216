"""Shuffled training batches streamed from a matrix that is not loaded whole, in bounded memory, the
same batches for the same seed. models.train streams a shard folder's lazy ShardedRows this way; any
row-sliceable matrix (a memory-mapped .npy) works.

    stream = ShuffleStream(x, batch_size=256, seed=0, buffer_rows=262_144, exclude=held_out_rows)
    for batch in stream.epoch(1):     # [batch_size, d] float32 ndarrays, stream.steps_per_epoch of them
        ...

The rows of x are cut into blocks: a ShardedRows' shards (clipped to its view), any other matrix's
runs of ``BLOCK_ROWS`` rows. Each epoch visits the blocks in an order drawn from (seed, epoch), reads
each in pieces of about ``PIECE_BYTES`` (a shard is memory-mapped, ``data.shards``), leaves out the
``exclude``d rows (a held-out set) and pours the rest into a shuffle buffer of ``buffer_rows`` rows
(default ``DEFAULT_BUFFER_ROWS`` = 262,144: 768 MiB at d 768 float32; ``--shuffle-buffer`` of
``mdlcodec train`` and ``select``). When the buffer is full, a random half of it (whole batches)
goes out as batches and the other half stays to mix with the next rows; at the end of the epoch what is left goes out in random order. So every row not excluded is
yielded exactly once per epoch, except the last ``n_rows % batch_size`` of the epoch's order, which
are dropped (as in-memory training drops the remainder of its shuffle); memory is the buffer plus
one piece plus the shards ``data.shards`` keeps mapped (two). A seed fixes the batches bit for bit.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from mdlcodec.core.errors import DataError
from mdlcodec.data.shards import ShardedRows

DEFAULT_BUFFER_ROWS = 262_144  # rows in the shuffle buffer
BLOCK_ROWS = 65_536            # rows per block of a matrix that is not a ShardedRows
PIECE_BYTES = 16 << 20         # about this many bytes per read


def seeded_rng(seed: int, *keys: int) -> np.random.Generator:
    """numpy's generator for (seed, keys...): any int seed (taken mod 2^64), non-negative keys."""
    return np.random.default_rng([int(seed) % 2 ** 64, *keys])


def blocks(x) -> list[tuple[int, int]]:
    """The row ranges [a, b) of x [n, d] that a stream visits as units: a ShardedRows' shards (in view
    rows, clipped to the view), else runs of BLOCK_ROWS rows."""
    n = len(x)
    if isinstance(x, ShardedRows):
        cuts = np.clip(x.offsets - x.start, 0, n)
        return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    return [(a, min(n, a + BLOCK_ROWS)) for a in range(0, n, BLOCK_ROWS)]


def kept_rows(excluded: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The row numbers of the ``ranks``-th rows (0-based, ascending ranks) that are not in the sorted
    array ``excluded``: rank t is row t + (number of excluded rows before it)."""
    shifted = excluded - np.arange(len(excluded))
    return ranks + np.searchsorted(shifted, ranks, side="right")


class ShuffleStream:
    """Shuffled batches [batch_size, d] float32 of the rows of x [n, d] (any row-sliceable matrix)
    except the sorted row numbers ``exclude``; see the module docstring for the order and memory."""

    def __init__(self, x, batch_size: int, seed: int, buffer_rows: int = DEFAULT_BUFFER_ROWS,
                 exclude: np.ndarray | None = None) -> None:
        if batch_size < 1:
            raise DataError(f"batch size {batch_size}; expected at least 1", param="batch_size")
        if buffer_rows < 1:
            raise DataError(f"shuffle buffer of {buffer_rows} rows; expected at least 1", param="shuffle_buffer")
        self.x, self.seed = x, int(seed)
        self.d = int(x.shape[1])
        self.exclude = np.zeros(0, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        if len(self.exclude) and (np.any(np.diff(self.exclude) <= 0) or self.exclude[0] < 0
                                  or self.exclude[-1] >= len(x)):
            raise ValueError("exclude must hold sorted, distinct row numbers of x")
        self.n_rows = len(x) - len(self.exclude)
        self.batch_size = min(int(batch_size), max(1, self.n_rows))
        self.buffer_rows = max(int(buffer_rows), self.batch_size)
        self.blocks = blocks(x)
        self.piece_rows = max(1, PIECE_BYTES // max(1, self.d * 4))

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: n_rows // batch_size."""
        return self.n_rows // self.batch_size

    def pieces(self, order: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row numbers [m], rows [m, d] float32) of every row not excluded, block by block in
        ``order`` (indices into ``blocks``; all in order if None), each block in pieces."""
        for j in range(len(self.blocks)) if order is None else order:
            a, b = self.blocks[int(j)]
            for s in range(a, b, self.piece_rows):
                e = min(b, s + self.piece_rows)
                rows = np.asarray(self.x[s:e], dtype=np.float32)
                ids = np.arange(s, e, dtype=np.int64)
                lo, hi = np.searchsorted(self.exclude, [s, e])
                if hi > lo:
                    keep = np.ones(e - s, bool)
                    keep[self.exclude[lo:hi] - s] = False
                    rows, ids = rows[keep], ids[keep]
                yield ids, rows

    def sum_of_squares(self) -> float:
        """Sum over every row not excluded and every column of x^2, in float64, in one ordered pass."""
        total = 0.0
        for _, rows in self.pieces():
            r = rows.astype(np.float64)
            total += float(np.einsum("ij,ij->", r, r))
        return total

    def sample(self, m: int, seed_key: int) -> np.ndarray:
        """m (at most n_rows) rows [m, d] float32 drawn without replacement from the rows not excluded,
        by a generator seeded with (seed, 0, seed_key) (epochs are (seed, epoch)), in ascending row order."""
        rng = seeded_rng(self.seed, 0, seed_key)
        ranks = np.sort(rng.choice(self.n_rows, size=min(m, self.n_rows), replace=False))
        return np.asarray(self.x[kept_rows(self.exclude, ranks)], dtype=np.float32)

    def epoch(self, epoch: int, with_ids: bool = False) -> Iterator[np.ndarray]:
        """The batches of one epoch (``epoch``, with the seed, fixes the order): steps_per_epoch arrays
        [batch_size, d] float32; with ``with_ids``, (row numbers [batch_size], batch) pairs."""
        rng = seeded_rng(self.seed, int(epoch))
        bs, cap = self.batch_size, self.buffer_rows
        buf = np.empty((cap, self.d), np.float32)
        ids = np.empty(cap, np.int64)
        fill, left = 0, self.steps_per_epoch

        def drain(m: int) -> Iterator:
            """Yield m // bs batches of random rows of the buffer; keep the others at its front."""
            nonlocal fill, left
            perm = rng.permutation(fill)
            out = min(m // bs, left) * bs
            for s in range(0, out, bs):
                sel = perm[s:s + bs]
                yield (ids[sel], buf[sel]) if with_ids else buf[sel]
            left -= out // bs
            keep = np.sort(perm[out:])  # keep[i] >= i: copying forward in slices never overwrites a source
            for s in range(0, len(keep), 4096):
                e = min(len(keep), s + 4096)
                buf[s:e] = buf[keep[s:e]]
                ids[s:e] = ids[keep[s:e]]
            fill = len(keep)

        for piece_ids, rows in self.pieces(rng.permutation(len(self.blocks))):
            pos = 0
            while pos < len(rows):
                take = min(cap - fill, len(rows) - pos)
                buf[fill:fill + take] = rows[pos:pos + take]
                ids[fill:fill + take] = piece_ids[pos:pos + take]
                fill, pos = fill + take, pos + take
                if fill == cap:
                    yield from drain(max(bs, cap // 2))
        while left > 0 and fill >= bs:
            yield from drain(fill)
