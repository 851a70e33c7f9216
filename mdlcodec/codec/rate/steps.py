"""Per-feature quantisation steps and the fast squared error the step searches use.

- ``allocate_steps``: each feature's step from the grid Delta * 2^(k/4), k in -4..8, minimising its
  bits + kappa * mu(Delta) * distortion on the training split's latents (a Lagrangian allocation;
  bits: the feature's activity KT code and its bins' empirical entropy; distortion: its rounding
  error times its decoder row's squared norm, cross terms ignored; mu = ``rdo.natural_lambda``);
- ``fast_sq_error``: the squared error of a sparse reconstruction through a sparse matmul (BLAS
  order: close to, not bit for bit, ``Decoder.reconstruct_sparse``'s exact one);
- ``fast_coarsest_step``: ``precision.coarsest_step``'s bisection with each verdict taken from the
  fast error, and from the exact one only within ``EXACT_BAND`` of the tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np

from mdlcodec.codec.decoder import Decoder
from mdlcodec.codec.rate.precision import _max_abs, coarsest_step, quantised_mse
from mdlcodec.codec.rate.quantiser import Quantiser
from mdlcodec.codec.rate.rdo import natural_lambda
from mdlcodec.codec.sparse import SparseLatents

STEP_GRID = 2.0 ** (np.arange(-4, 9) / 4)
"""Multipliers of the base step a feature may take (per-feature steps)."""
MSE_BLOCK = 8192
"""Rows per block of a sparse-matmul MSE."""
EXACT_BAND = 2e-6
"""Relative distance from max_mse within which the plain step's bisection asks the exact MSE."""


def _h2_bits(a: np.ndarray, n: int) -> np.ndarray:
    """n * H((a + 1/2) / (n + 1)) in bits: the KT activity code of a feature active a times in n."""
    p = (a + 0.5) / (n + 1.0)
    return -n * (p * np.log2(p) + (1 - p) * np.log2(1 - p))


def allocate_steps(decoder: Decoder, z: SparseLatents, base: float, kappa: float = 1.0,
                   grid: np.ndarray = STEP_GRID) -> np.ndarray:
    """[d_sae] float32 steps: each feature's from base * grid minimising its bits + kappa * mu(base) *
    distortion over the latents z of n samples (the module's docstring)."""
    _, feats, vals = z.csr()
    return allocate_csr(decoder, z.n, feats, vals, base, kappa, grid)


def allocate_csr(decoder: Decoder, n: int, feats: np.ndarray, vals: np.ndarray, base: float, kappa: float,
              grid: np.ndarray = STEP_GRID) -> np.ndarray:
    """allocate_steps on the latents' nonzero entries (feature ids, values) of n samples."""
    d = decoder.d_sae
    g = np.sum(decoder.W_dec.astype(np.float64) ** 2, axis=1) / float(decoder.input_scale) ** 2
    mu = kappa * natural_lambda(decoder, base)
    feats = feats.astype(np.int64, copy=False)
    vals64 = vals.astype(np.float64)
    cost = np.zeros((len(grid), d))
    for i, m in enumerate(grid):
        s = np.float32(base * m)
        bins = np.rint(vals / s).astype(np.int64)
        err = (vals64 - bins * np.float64(s)) ** 2
        dist = np.bincount(feats, weights=err, minlength=d) * g
        on = bins != 0
        f_on, b_on = feats[on], bins[on]
        a = np.bincount(f_on, minlength=d)
        bits = _h2_bits(a, n)
        if len(f_on):
            # (feature, bin) pairs counted through one int64 key: a 1-D sort, not np.unique(axis=1)'s
            lo = int(b_on.min())
            span = int(b_on.max()) - lo + 1
            keys, counts = np.unique(f_on * span + (b_on - lo), return_counts=True)
            kf = keys // span
            bits += np.bincount(kf, weights=-counts * np.log2(counts / a[kf]), minlength=d)
        cost[i] = bits + mu * dist
    return (base * grid[np.argmin(cost, axis=0)]).astype(np.float32)


def fast_sq_error(decoder: Decoder, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray,
                   x: np.ndarray) -> float:
    """Sum of squared errors of the reconstruction of sparse latents (CSR) against x, through a sparse
    matmul (BLAS order: close to, not bit for bit, Decoder.reconstruct_sparse's; the search's figure)."""
    import torch

    W = torch.from_numpy(np.ascontiguousarray(decoder.W_dec, np.float32))
    b = torch.from_numpy(np.ascontiguousarray(decoder.b_dec, np.float32))
    scale = np.float32(decoder.input_scale)
    total = 0.0
    for a in range(0, len(x), MSE_BLOCK):
        e = min(a + MSE_BLOCK, len(x))
        lo, hi = int(indptr[a]), int(indptr[e])
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            z = torch.sparse_csr_tensor(torch.from_numpy((indptr[a:e + 1] - lo).astype(np.int64)),
                                        torch.from_numpy(indices[lo:hi].astype(np.int64)),
                                        torch.from_numpy(np.asarray(values[lo:hi], np.float32)),
                                        size=(e - a, W.shape[0]), check_invariants=False)
        rec = ((z @ W + b) / scale).numpy() if hi > lo else np.repeat((b / scale).numpy()[None], e - a, 0)
        diff = rec.astype(np.float64) - x[a:e]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def fast_coarsest_step(decoder: Decoder, z: SparseLatents, x: np.ndarray, max_mse: float) -> float:
    """``precision.coarsest_step`` (iters 24, no forest) with the same bisection and, at each step,
    the same verdict: taken from the sparse-matmul MSE where that is more than ``EXACT_BAND`` from
    max_mse, else from quantised_mse itself (the exact figure); far fewer exact reconstructions."""
    indptr, cols, vals = z.csr()
    size = x.size

    def meets(step: float) -> bool:
        q = Quantiser.uniform(step, decoder.d_sae)
        bins = np.rint(vals / q.step[cols])
        keep = bins != 0
        kept = np.zeros(len(keep) + 1, np.int64)
        np.cumsum(keep, out=kept[1:])
        qi = kept[indptr]  # the kept entries' row pointers
        mse = fast_sq_error(decoder, qi, cols[keep], (bins[keep].astype(np.float32) * q.step[cols[keep]]), x) / size
        if abs(mse - max_mse) > EXACT_BAND * max_mse:
            return mse <= max_mse
        return quantised_mse(decoder, z, x, step) <= max_mse

    base = fast_sq_error(decoder, indptr, cols, vals, x) / size
    if base > max_mse * (1 - EXACT_BAND):
        return coarsest_step(decoder, z, x, max_mse)  # its own checks and message
    top = _max_abs(z)
    hi = np.log2(max(top, 1e-12)) + 1.0
    lo = hi - 30.0
    if meets(2.0 ** hi):
        return float(2.0 ** hi)
    for _ in range(24):
        mid = (lo + hi) / 2
        if meets(2.0 ** mid):
            lo = mid
        else:
            hi = mid
    return float(np.float32(2.0 ** lo))
