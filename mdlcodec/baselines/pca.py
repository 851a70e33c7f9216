"""PCA transform coding: the dense explanation in the paper's sense, as an ordinary mdlcodec Codec
(see ``mdlcodec.baselines`` for the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mdlcodec.baselines.stored import as_rows
from mdlcodec.codec import Codec, Decoder, EntropyModel, Quantiser, SparseCodes
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.core.errors import DataError
from mdlcodec.data.shards import ShardedRows


@dataclass
class PCA:
    """Principal components of a training split: mean [d] and components [d, d] (orthonormal rows,
    by decreasing variance), variances [d] (per component, on the training split), all float64."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray) -> "PCA":
        """The components of train [n, d]; a shard folder's lazy rows are read in two chunked passes
        (mean, then the centred covariance, in float64), never whole."""
        if isinstance(train, ShardedRows):
            mean, cov = _chunked_moments(train)
        else:
            x = as_rows(train).astype(np.float64)
            mean = x.mean(axis=0)
            xc = x - mean
            cov = xc.T @ xc / len(x)
        var, vec = np.linalg.eigh(cov)
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


def _chunked_moments(x: ShardedRows) -> tuple[np.ndarray, np.ndarray]:
    """Mean [d] and covariance [d, d] (float64, over n) of x, read chunk by chunk (DEFAULT_CHUNK rows)."""
    n, d = x.shape
    if n == 0:
        as_rows(x[:0])  # the one-line error of an empty matrix

    def chunks():
        for s in range(0, n, DEFAULT_CHUNK):
            yield as_rows(x[s:s + DEFAULT_CHUNK]).astype(np.float64)

    mean = sum(c.sum(axis=0) for c in chunks()) / n
    cov = np.zeros((d, d))
    for c in chunks():
        c -= mean
        cov += c.T @ c
    return mean, cov / n


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
    test = as_rows(test)
    ms = candidates if candidates is not None else pca_candidates(pca, test, max_mse)
    search, best = [], None
    for m in ms:
        step = pca_step_for_mse(pca, m, test, max_mse)
        if step is None:
            search.append({"m": m, "step": None, "cross_entropy_bits_per_sample": None})
            continue
        codec = pca_codec(pca, m, step, train[:search_rows])
        bits = codec.chunk_coder.ideal_bits(codec.latents(test[:search_rows]))["total"] / len(test[:search_rows])
        search.append({"m": m, "step": step, "cross_entropy_bits_per_sample": bits})
        if best is None or bits < best[0]:
            best = (bits, m, step, codec)
    if best is None:
        raise DataError(f"PCA cannot reach test MSE {max_mse:g} with the candidate component counts {ms}")
    _, m, step, codec = best
    if len(train) > search_rows:
        codec = pca_codec(pca, m, step, train)
    return PCAMatch(codec, m, step, max_mse, search)
