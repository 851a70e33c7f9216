"""What a user would otherwise do with activations, each as a method that writes real bytes.

Every method maps activations x [n, d] float32 to ``bytes`` and back to x_hat [n, d] float32; bits
per sample are always 8 * len(bytes) / n, so headers, scales and stream overheads are paid.

- ``StoredFloat("float32" | "float16")``: the array as stored, little-endian, after an 8-byte
  header (n, d as uint32). float32 is exact; float16 rounds each value to the nearest half.
- ``IntCompressed(compressor, bits)``: uniform integer quantisation with a per-dimension scale,
  then a general-purpose compressor. Scale rule (max-abs per dimension of the data being encoded):
  L = 2**(bits-1) - 1 levels each side, scale_j = max_i |x_ij| / L (1 where a column is all zero),
  q_ij = rint(x_ij / scale_j) in [-L, L] stored as int8, x_hat_ij = q_ij * scale_j, so
  |x_ij - x_hat_ij| <= scale_j / 2. The compressed payload is: n, d, bits (<u4 u4 u1), the scales
  as float32 [d], then q as int8 [n, d] row-major. Compressors at their strongest common settings:
  gzip level 9, xz (lzma) preset 9, zstd level 19. ``bits=8`` is the int8 baseline; smaller
  ``bits`` trace its rate-distortion curve.
- PCA transform coding: ``PCA.fit`` on the training split; ``pca_codec`` keeps the leading m
  components and is an ordinary mdlcodec ``Codec`` whose decoder is W_dec = components [m, d],
  b_dec = mean, and whose encoder is (x - mean) @ components.T; coefficients are quantised with
  one uniform step and entropy-coded by the same coder as SAE latents (a coefficient whose bin is
  0 is inactive). ``match_pca`` finds, for a target test MSE, the coarsest step meeting it for each
  candidate m and keeps the m with the fewest bits.
- ``CodecMethod``: any mdlcodec ``Codec`` (an SAE's or a PCA's); with ``embed_model`` its files
  carry the decoder and tables (the two-part code).
"""

from __future__ import annotations

import gzip
import lzma
import struct
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser, SparseCodes
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.errors import CodecError, DataError


class Method:
    """A way to store activations. ``name`` names it in tables; ``lossless`` says whether
    decode(encode(x)) == x exactly; ``model_bits`` are bits a decoder needs once besides the file
    (0 where the file is self-contained); ``params`` describes the settings (JSON-serialisable)."""

    name: str = ""
    lossless: bool = False
    model_bits: int = 0

    @property
    def params(self) -> dict:
        return {}

    def encode(self, x: np.ndarray) -> bytes:
        """Activations [n, d] -> bytes."""
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        """Bytes -> reconstructed activations [n, d] float32."""
        raise NotImplementedError


def _as_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"activations must be a non-empty matrix [n, d], got shape {tuple(x.shape)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError("activations contain NaN or Inf values")
    return x


_SHAPE = struct.Struct("<II")


def _parse_shape(data: bytes, what: str) -> tuple[int, int]:
    if len(data) < _SHAPE.size:
        raise CodecError(f"{what}: data too short for its header ({len(data)} bytes)")
    return _SHAPE.unpack_from(data)


class StoredFloat(Method):
    """The array as stored: an 8-byte header (n, d as <u4), then n*d little-endian floats."""

    def __init__(self, dtype: str = "float32"):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype}")
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.name = dtype
        self.lossless = dtype == "float32"

    @property
    def params(self) -> dict:
        return {"dtype": self.name}

    def encode(self, x: np.ndarray) -> bytes:
        x = _as_rows(x)
        return _SHAPE.pack(*x.shape) + x.astype(self.dtype).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        n, d = _parse_shape(data, self.name)
        body = memoryview(data)[_SHAPE.size:]
        if len(body) != n * d * self.dtype.itemsize:
            raise CodecError(f"{self.name}: expected {n * d * self.dtype.itemsize} bytes of values, got {len(body)}")
        return np.frombuffer(body, dtype=self.dtype).reshape(n, d).astype(np.float32)


def _zstd_pair(level: int) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    import zstandard

    return (lambda b: zstandard.ZstdCompressor(level=level).compress(b),
            lambda b: zstandard.ZstdDecompressor().decompress(b))


COMPRESSORS: dict[str, tuple[str, Callable[[], tuple[Callable, Callable]]]] = {
    "gzip": ("level 9", lambda: (lambda b: gzip.compress(b, compresslevel=9, mtime=0), gzip.decompress)),
    "xz": ("preset 9", lambda: (lambda b: lzma.compress(b, preset=9), lzma.decompress)),
    "zstd": ("level 19", lambda: _zstd_pair(19)),
}
"""name -> (setting, factory of (compress, decompress))."""

_INT_HEADER = struct.Struct("<IIB")


class IntCompressed(Method):
    """Per-dimension max-abs integer quantisation to ``bits`` (2..8) bits, stored as int8, then
    compressed (see the module docstring for the exact rule and layout)."""

    def __init__(self, compressor: str = "zstd", bits: int = 8):
        if compressor not in COMPRESSORS:
            raise ValueError(f"unknown compressor {compressor!r} (known: {', '.join(COMPRESSORS)})")
        if not 2 <= bits <= 8:
            raise ValueError(f"bits must be in 2..8, got {bits}")
        self.compressor, self.bits = compressor, bits
        self.levels = 2 ** (bits - 1) - 1
        self._compress, self._decompress = COMPRESSORS[compressor][1]()
        self.name = f"int{bits}+{compressor}"

    @property
    def params(self) -> dict:
        return {"bits": self.bits, "levels_each_side": self.levels, "scale_rule": "max-abs per dimension / levels",
                "compressor": self.compressor, "setting": COMPRESSORS[self.compressor][0]}

    def scales(self, x: np.ndarray) -> np.ndarray:
        """[d] float32 scale of each dimension: max |x[:, j]| / levels (1 for an all-zero column)."""
        top = np.abs(x).max(axis=0).astype(np.float32)
        return np.where(top > 0, top / np.float32(self.levels), np.float32(1)).astype(np.float32)

    def encode(self, x: np.ndarray) -> bytes:
        x = _as_rows(x)
        s = self.scales(x)
        q = np.clip(np.rint(x / s), -self.levels, self.levels).astype(np.int8)
        return self._compress(_INT_HEADER.pack(*x.shape, self.bits) + s.astype("<f4").tobytes() + q.tobytes())

    def decode(self, data: bytes) -> np.ndarray:
        try:
            raw = self._decompress(data)
        except Exception as e:  # each library raises its own error type for damaged input
            raise CodecError(f"{self.name}: data does not decompress ({e})") from None
        if len(raw) < _INT_HEADER.size:
            raise CodecError(f"{self.name}: data too short for its header")
        n, d, _ = _INT_HEADER.unpack_from(raw)
        if len(raw) != _INT_HEADER.size + 4 * d + n * d:
            raise CodecError(f"{self.name}: expected {_INT_HEADER.size + 4 * d + n * d} bytes, got {len(raw)}")
        s = np.frombuffer(raw, "<f4", d, _INT_HEADER.size)
        q = np.frombuffer(raw, np.int8, n * d, _INT_HEADER.size + 4 * d).reshape(n, d)
        return (q.astype(np.float32) * s).astype(np.float32)


class CodecMethod(Method):
    """An mdlcodec Codec as a method. Without ``embed_model`` the file refers to its model by
    fingerprint, and ``model_bits`` is the decoder as a self-contained file would store it
    (``Decoder.bits()``: float32 W_dec, b_dec, input_scale) plus a hierarchy's tables
    (``Codec.hierarchy_bits()``); with it the file carries the decoder and tables, so its bytes
    already hold the two-part code."""

    def __init__(self, codec: Codec, name: str, embed_model: bool = False, chunk_size: int = DEFAULT_CHUNK,
                 params: dict | None = None):
        self.codec, self.name, self.embed_model, self.chunk_size = codec, name, embed_model, chunk_size
        self.model_bits = 0 if embed_model else codec.decoder.bits() + codec.hierarchy_bits()
        self._params = dict(params or {})

    @property
    def params(self) -> dict:
        return {"d_sae": self.codec.decoder.d_sae, "embed_model": self.embed_model,
                "step": float(self.codec.quantiser.step[0]) if np.all(self.codec.quantiser.step == self.codec.quantiser.step[0])
                else "per feature", "decoder_bits": self.codec.decoder.bits(), **self._params}

    def encode(self, x: np.ndarray) -> bytes:
        return self.codec.encode(x, self.chunk_size, self.embed_model)

    def decode(self, data: bytes) -> np.ndarray:
        return self.codec.decode(data)


# ---------------------------------------------------------------------------------- PCA


@dataclass
class PCA:
    """Principal components of a training split: mean [d] and components [d, d] (orthonormal rows,
    by decreasing variance), variances [d] (per component, on the training split), all float64."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray) -> "PCA":
        x = _as_rows(train).astype(np.float64)
        mean = x.mean(axis=0)
        xc = x - mean
        var, vec = np.linalg.eigh(xc.T @ xc / len(x))
        order = np.argsort(var)[::-1]
        return cls(mean, np.ascontiguousarray(vec[:, order].T), np.maximum(var[order], 0.0))

    @property
    def d(self) -> int:
        return len(self.mean)

    def decoder(self, m: int) -> Decoder:
        """The codec decoder of the leading m components: W_dec [m, d], b_dec = mean, input_scale 1."""
        return Decoder(self.components[:m].astype(np.float32), self.mean.astype(np.float32), 1.0)

    def encoder(self, m: int) -> Callable[[np.ndarray], np.ndarray]:
        """x [n, d] -> coefficients (x - mean) @ components[:m].T, [n, m] float32."""
        c = np.ascontiguousarray(self.components[:m].T.astype(np.float32))
        mean = self.mean.astype(np.float32)
        return lambda x: ((np.asarray(x, np.float32) - mean) @ c).astype(np.float32)


def pca_codec(pca: PCA, m: int, step: float, train: np.ndarray) -> Codec:
    """A Codec for the leading m components, coefficients quantised with ``step``, entropy model
    fit on the training split's quantised coefficients."""
    enc = pca.encoder(m)
    quantiser = Quantiser.uniform(step, m)
    codes = [quantiser.quantise(enc(train[s:s + DEFAULT_CHUNK])) for s in range(0, len(train), DEFAULT_CHUNK)]
    return Codec(pca.decoder(m), quantiser, EntropyModel.fit(SparseCodes.concat(codes)), enc)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def pca_step_for_mse(pca: PCA, m: int, test: np.ndarray, max_mse: float, iters: int = 40) -> float | None:
    """The coarsest uniform step whose quantised m-component reconstruction of ``test`` has MSE
    <= max_mse, or None if even the unquantised m components exceed it.

    The search uses the orthonormality of the components (error = truncation + quantisation error
    of the coefficients, in float64), then checks the float32 codec's actual reconstruction and
    shrinks the step by 0.1% until it meets the bound.
    """
    x = np.asarray(test, np.float64)
    n, d = x.shape
    z = (x - pca.mean) @ pca.components[:m].T
    tail = float(((x - pca.mean) ** 2).sum() - (z ** 2).sum())
    budget = max_mse * n * d - tail
    if budget < 0:
        return None

    def qerr(step: float) -> float:
        return float(((z - step * np.rint(z / step)) ** 2).sum())

    hi = np.log2(max(float(np.abs(z).max()), 1e-12)) + 2.0
    if qerr(2.0 ** hi) <= budget:
        step = 2.0 ** hi
    else:
        lo = hi - 40.0
        for _ in range(iters):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if qerr(2.0 ** mid) <= budget else (lo, mid)
        step = 2.0 ** lo
    step = float(np.float32(step))
    q, dec, enc = Quantiser.uniform(step, m), pca.decoder(m), pca.encoder(m)
    coeffs = enc(test)
    for _ in range(200):
        if _mse(dec.reconstruct(q.dequantise(q.quantise(coeffs))), x) <= max_mse:
            return step
        step = float(np.float32(step * 0.999))
        q = Quantiser.uniform(step, m)
    raise ValueError(f"no step meets MSE {max_mse:g} with {m} components in float32")


def pca_candidates(pca: PCA, test: np.ndarray, max_mse: float, count: int = 12) -> list[int]:
    """Candidate numbers of components: geometrically spaced (at most ``count`` values) from m_min,
    the fewest whose unquantised test MSE is below 98% of ``max_mse`` (some room is left for
    quantisation), to min(d, 8 m_min). Empty if no m qualifies."""
    x = np.asarray(test, np.float64)
    n, d = x.shape
    xc = x - pca.mean
    energy = ((xc @ pca.components.T) ** 2).sum(axis=0)  # per component, on test
    tail = (xc ** 2).sum() - np.cumsum(energy)             # error with the leading 1..d components
    ok = np.flatnonzero(tail < max_mse * n * d * 0.98)
    if len(ok) == 0:
        return []
    m_min = int(ok[0]) + 1
    ms = np.unique(np.round(np.geomspace(m_min, max(m_min, min(d, 8 * m_min)), count)).astype(int))
    return [int(m) for m in ms]


@dataclass
class PCAMatch:
    """The PCA codec chosen for a target test MSE. search: one row per candidate m (step, ideal
    bits per sample of the test split under the model, or None where m cannot meet the target)."""

    codec: Codec
    m: int
    step: float
    max_mse: float
    search: list[dict] = field(default_factory=list)


SEARCH_ROWS = 8192
"""Rows of each split the component search codes per candidate (the chosen codec is refit on all)."""


def match_pca(pca: PCA, train: np.ndarray, test: np.ndarray, max_mse: float,
              candidates: list[int] | None = None, search_rows: int = SEARCH_ROWS) -> PCAMatch:
    """For each candidate m: the coarsest step meeting ``max_mse`` on the whole test split; an entropy
    model fit on the first ``search_rows`` training rows; the code length under it of the first
    ``search_rows`` test rows (the cross-entropy the coder reaches, which a measured file matches to a
    fraction of a percent). Keeps the m with the fewest bits, and refits its entropy model on the whole
    training split. Raises DataError if no candidate meets the target."""
    test = _as_rows(test)
    ms = candidates if candidates is not None else pca_candidates(pca, test, max_mse)
    search, best = [], None
    for m in ms:
        step = pca_step_for_mse(pca, m, test, max_mse)
        if step is None:
            search.append({"m": m, "step": None, "ideal_bits_per_sample": None})
            continue
        codec = pca_codec(pca, m, step, train[:search_rows])
        bits = codec.chunk_coder.ideal_bits(codec.latents(test[:search_rows]))["total"] / len(test[:search_rows])
        search.append({"m": m, "step": step, "ideal_bits_per_sample": bits})
        if best is None or bits < best[0]:
            best = (bits, m, step, codec)
    if best is None:
        raise DataError(f"PCA cannot reach test MSE {max_mse:g} with the candidate component counts {ms}")
    _, m, step, codec = best
    if len(train) > search_rows:
        codec = pca_codec(pca, m, step, train)
    return PCAMatch(codec, m, step, max_mse, search)
