"""Stored and general-purpose-compressed activations, and any mdlcodec Codec, as methods that write
real bytes (see ``mdlcodec.baselines`` for the rules)."""

from __future__ import annotations

import gzip
import lzma
import struct
from typing import Callable

import numpy as np

from mdlcodec.codec import Codec
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.core.errors import CodecError, DataError


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


def as_rows(x: np.ndarray) -> np.ndarray:
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
        x = as_rows(x)
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
        x = as_rows(x)
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


def distortion(x: np.ndarray, x_hat: np.ndarray) -> dict:
    """MSE (mean over samples and dimensions), FVU and the largest absolute error, in float64."""
    x64 = np.asarray(x, np.float64)
    err = np.asarray(x_hat, np.float64) - x64
    sse = float((err ** 2).sum())
    total_var = float(((x64 - x64.mean(axis=0)) ** 2).sum())
    return {"mse": sse / x64.size, "fvu": sse / total_var if total_var > 0 else float("nan"),
            "max_abs_error": float(np.abs(err).max()) if err.size else 0.0}
