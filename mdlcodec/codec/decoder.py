"""The SAE's decoder as the codec holds it (W_dec, b_dec, input_scale as float32 arrays, from an SAE
or a self-contained file's model section), and the checks every array of activations goes through
before it is encoded."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mdlcodec.codec.arrays import take
from mdlcodec.codec.rate.decoder_code import ARRAYS as CODED_ROW_ARRAYS
from mdlcodec.codec.rate.decoder_code import CodedRows
from mdlcodec.codec.sparse import SparseCodes
from mdlcodec.core.errors import CodecError, ModelError


@dataclass
class Decoder:
    """The SAE's decoder: x_hat = (z @ W_dec + b_dec) / input_scale.

    W_dec [d_sae, d_in] float32, b_dec [d_in] float32, input_scale a float32 scalar; ``coded``, when
    the rows are stored coded (decoder_code.CodedRows: the quantised W_dec is then this W_dec), else
    None (float32 rows).
    """

    W_dec: np.ndarray
    b_dec: np.ndarray
    input_scale: float
    coded: CodedRows | None = None

    ARRAYS = frozenset({"W_dec", "b_dec", "input_scale"})
    """The decoder's arrays in a self-contained file's model section (float32 rows)."""
    CODED_ARRAYS = frozenset({"b_dec", "input_scale"}) | CODED_ROW_ARRAYS
    """The same with coded rows (decoder_code's arrays in place of W_dec)."""

    def __post_init__(self) -> None:
        """ValueError unless W_dec is [d_sae >= 1, d_in >= 1], b_dec [d_in], every weight finite and
        input_scale a finite number > 0: a decoder whose output could be NaN for finite latents is
        refused wherever it comes from (an SAE, a model folder, a file)."""
        W, b = np.asarray(self.W_dec), np.asarray(self.b_dec)
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1 or b.shape != (W.shape[1],):
            raise ValueError(f"decoder weights W_dec {list(W.shape)} and b_dec {list(b.shape)} do not "
                             "form a decoder [d_sae, d_in] and [d_in]")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError("decoder weights hold NaN or Inf")
        if not (np.isfinite(self.input_scale) and self.input_scale > 0):
            raise ValueError(f"input_scale is {self.input_scale}, not a finite number > 0")

    @classmethod
    def from_sae(cls, sae, share: bool = False) -> "Decoder":
        """The SAE's decoder; ModelError if its weights cannot decode (NaN, Inf, input_scale <= 0).
        ``share``: W_dec and b_dec are the SAE's own memory where its tensors are float32 on the CPU
        (a codec loaded from a folder holds one W_dec, not two; its SAE must then not be trained
        further), else copies (``Codec.fit``: the caller's SAE may change afterwards)."""
        return cls.from_tensors(sae.W_dec, sae.b_dec, sae.cfg.input_scale, share)

    @classmethod
    def from_tensors(cls, W_dec, b_dec, input_scale: float, share: bool = False) -> "Decoder":
        """The decoder of tensors W_dec [d_sae, d_in] and b_dec [d_in] (torch, any device and float
        dtype) and ``input_scale``: float32 arrays, the tensors' memory where ``share`` and they are
        float32 on the CPU, else copies. ModelError if they cannot decode (``__post_init__``)."""
        W, b = (np.asarray(t.detach().cpu().numpy(), np.float32) for t in (W_dec, b_dec))
        if not share:
            W, b = W.copy(), b.copy()
        try:
            return cls(W, b, float(np.float32(input_scale)))
        except ValueError as e:
            raise ModelError(f"the SAE cannot be a codec's decoder: {e}") from None

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], fingerprint: str | None = None) -> "Decoder":
        """The decoder in a model section's arrays, its rows float32 (W_dec) or coded (decoder_code);
        ValueError naming the array if one is missing, not float32, of another shape than W_dec
        [d_sae, d_in], b_dec [d_in], input_scale [1], or unfit (above), and coded rows that are not
        what the writer writes (``CodedRows.decode``). ``fingerprint``: the one the decoder must have
        (a file's header): checked as soon as the rows are known, coded rows while they are decoded,
        before they are built (CodecError: the file and its model section disagree)."""
        scale = float(take(a, "input_scale", np.float32, (1,))[0])
        if "W_dec" not in a and "W_dec_words" in a:
            b = take(a, "b_dec", np.float32, (None,))
            coded = CodedRows.from_arrays(a, len(b))
            h = _hash_start((len(coded.row_scale), len(b)))

            def checked() -> None:
                if fingerprint is not None and _hash_end(h, b, scale) != fingerprint:
                    raise CodecError(_NOT_THIS_DECODER)
            return cls(coded.decode(lambda rows: h.update(memoryview(rows.astype("<f4"))), checked), b, scale, coded)
        W = take(a, "W_dec", np.float32, (None, None))
        decoder = cls(W, take(a, "b_dec", np.float32, (W.shape[1],)), scale)
        if fingerprint is not None and decoder.fingerprint() != fingerprint:
            raise CodecError(_NOT_THIS_DECODER)
        return decoder

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The model section's arrays of this decoder (``ARRAYS`` or ``CODED_ARRAYS``)."""
        rows = self.coded.to_arrays() if self.coded is not None else {"W_dec": self.W_dec}
        return {**rows, "b_dec": self.b_dec, "input_scale": np.array([self.input_scale], np.float32)}

    def with_coded_rows(self, levels: int) -> "Decoder":
        """This decoder with its rows quantised to ``levels`` levels a side and coded (decoder_code)."""
        coded, W_hat = CodedRows.encode(self.W_dec, levels)
        return Decoder(W_hat, self.b_dec, self.input_scale, coded)

    @cached_property
    def _row_bound(self) -> np.ndarray:
        """[d_sae] float64: the largest |weight| of each decoder row (two reductions: no [d_sae, d_in] temporary)."""
        return np.maximum(self.W_dec.max(axis=1), -self.W_dec.min(axis=1)).astype(np.float64)

    def check_values(self, codes: SparseCodes, step: np.ndarray) -> int | None:
        """The first row of codes (CSR) whose latent values bin * step or reconstruction could leave
        float32's finite range, or None. A bound, in float64: (max|b_dec| + sum |value| * max|W_dec row|)
        / input_scale, and the sum before the division, kept below float32's max / 4, so that no
        float32 sum of these terms in any order overflows; each |value| below it as well."""
        if not codes.nnz:
            return None
        big = np.float64(np.finfo(np.float32).max) / 4
        v = np.abs(codes.bins.astype(np.float64)) * step.astype(np.float64)[codes.indices]
        rows = codes.rows()
        sums = np.bincount(rows, weights=v * self._row_bound[codes.indices], minlength=codes.n)
        pre = float(np.abs(self.b_dec).max()) + sums
        bad = np.flatnonzero(~((pre <= big) & (pre / self.input_scale <= big)))[:1].tolist()
        bad += rows[~(v <= big)][:1].tolist()
        return min(bad) if bad else None

    @property
    def d_sae(self) -> int:
        return self.W_dec.shape[0]

    @property
    def d_in(self) -> int:
        return self.W_dec.shape[1]

    def reconstruct_sparse(self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Sparse latents (CSR: indptr [n+1], indices [nnz] ascending per row, values [nnz]) ->
        activations [n, d_in] float32.

        Each row starts at b_dec and adds value * W_dec[f] for its active features in ascending
        order, in float32 elementwise arithmetic, then divides by input_scale: no BLAS reduction,
        so the result is bit-identical whatever the chunking, thread count or machine.
        """
        n = len(indptr) - 1
        out = np.repeat(self.b_dec[None, :], n, axis=0)
        counts = np.diff(indptr)
        if len(indices):
            rows = np.repeat(np.arange(n), counts)
            rank = np.arange(len(indices)) - np.repeat(indptr[:-1], counts)
            order = np.argsort(rank, kind="stable")
            bounds = np.searchsorted(rank[order], np.arange(int(counts.max()) + 1))
            vals = np.asarray(values, dtype=np.float32)
            for j in range(int(counts.max())):
                sel = order[bounds[j]:bounds[j + 1]]  # the j-th active feature of each row that has one
                if len(sel) == n:  # every row has one, in row order
                    out += vals[sel, None] * self.W_dec[indices[sel]]
                else:
                    out[rows[sel]] += vals[sel, None] * self.W_dec[indices[sel]]
        out /= np.float32(self.input_scale)
        return out

    def reconstruct(self, z: np.ndarray) -> np.ndarray:
        """Dense latents [n, d_sae] -> activations [n, d_in] float32 (zeros are inactive), by reconstruct_sparse."""
        rows, cols = np.nonzero(z)
        indptr = np.zeros(len(z) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(z)), out=indptr[1:])
        return self.reconstruct_sparse(indptr, cols, z[rows, cols])

    def fingerprint(self) -> str:
        """32 hex digits of sha256 over W_dec's shape, W_dec, b_dec and input_scale (little-endian)."""
        h = _hash_start(self.W_dec.shape)
        h.update(memoryview(np.ascontiguousarray(self.W_dec, "<f4")))  # not copied
        return _hash_end(h, self.b_dec, self.input_scale)

    def bits(self) -> int:
        """Bits of the decoder as stored in a self-contained file: its rows (float32, or coded), the
        float32 bias and input scale."""
        rows = self.coded.bits() if self.coded is not None else 32 * self.W_dec.size
        return rows + 32 * (self.b_dec.size + 1)


_NOT_THIS_DECODER = "the model does not match the file (SAE decoder fingerprint differs)"


def _hash_start(shape: tuple[int, int]):
    """The fingerprint's hash up to W_dec's weights, which follow in row order (in one piece or in blocks)."""
    h = hashlib.sha256(b"mdlcodec-decoder-v1")
    h.update(memoryview(np.array(shape, "<i8")))
    return h


def _hash_end(h, b_dec: np.ndarray, input_scale: float) -> str:
    h.update(memoryview(np.ascontiguousarray(b_dec, "<f4")))
    h.update(memoryview(np.array([input_scale], "<f4")))
    return h.hexdigest()[:32]


def check_shape(x, d_in: int, what: str) -> None:
    """CodecError naming ``what`` unless x (an array, or a lazy matrix such as a ShardedRows: not read)
    has shape [n, d_in]."""
    shape = tuple(np.shape(x))
    if len(shape) != 2 or shape[1] != d_in:
        raise CodecError(f"{what} has shape {shape}, the model expects [n, {d_in}]")


def check_activations(x: np.ndarray, d_in: int, what: str) -> np.ndarray:
    """x as a C-contiguous float32 [n, d_in] array; CodecError naming ``what`` if it has another
    shape, is not numeric, or holds NaN or Inf."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d_in:
        raise CodecError(f"{what} has shape {tuple(x.shape)}, the model expects [n, {d_in}]")
    if not np.issubdtype(x.dtype, np.number):
        raise CodecError(f"{what} is not numeric (dtype {x.dtype})")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise CodecError(f"{what} contains NaN or Inf values")
    return x
