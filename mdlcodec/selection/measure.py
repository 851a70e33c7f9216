"""Description length of a codec on the test split (the paper's Appendix C, steps 3-4), in the
project's vocabulary (README, "What the figures mean"), bits per test sample:

- cross-entropy: the ideal code length of the test split's quantised latents under the codec's
  tables (fit on the training split), i.e. the entropy the paper computes, split into activity
  (which features are active) and values; what the payload must match;
- payload: the measured bits of the coded chunks of the real .mdlc file of the test split;
- file: every byte of that file, 8 * len(bytes) / n_test;
- beside them: decoder bits (the two-part term: float32 W_dec, b_dec as a self-contained file
  stores them, for the whole decoder) and Eq. 1's crude bound L0 (B + log2 D) at the measured
  bits per value B.
"""

from __future__ import annotations

import numpy as np

from mdlcodec.baselines import PCA, match_pca
from mdlcodec.codec import Codec, payload_bits
from mdlcodec.codec.precision import fit_codec
from mdlcodec.theory import dl_bound_sparse


def measure_codec(codec: Codec, test: np.ndarray) -> dict:
    """Bits per test sample of ``codec``: cross-entropy, and payload and file of its real file; and
    the quantised MSE.

    Returns: step, quantised_test_mse, quantised_l0 (non-zero bins per sample), bits_per_value
    (value bits per non-zero bin), cross_entropy_bits {activity, values, total}, payload_bits,
    file_bits (all bits/sample), payload_over_cross_entropy, file_over_cross_entropy,
    decoder_bits (whole decoder, bits), eq1_bound (bits/sample).
    """
    n = len(test)
    codes = codec.latents(test)
    ideal = codec.chunk_coder.ideal_bits(codes)
    data = codec.encode(test)
    payload = payload_bits(data)
    x_hat = codec.decode(data)
    if not np.array_equal(x_hat, codec.reconstruct(codes)):
        raise AssertionError("the codec's file does not decode to its quantised latents")
    l0q = codes.nnz / n
    bpv = ideal["values"] / max(codes.nnz, 1)
    steps = codec.quantiser.step
    return {
        "step": float(steps[0]) if np.all(steps == steps[0]) else None,
        "quantised_test_mse": float(np.mean((x_hat.astype(np.float64) - np.asarray(test, np.float64)) ** 2)),
        "quantised_l0": l0q,
        "bits_per_value": bpv,
        "cross_entropy_bits": {k: v / n for k, v in ideal.items()},
        "payload_bits": payload / n,
        "file_bits": 8 * len(data) / n,
        "payload_over_cross_entropy": payload / ideal["total"] if ideal["total"] > 0 else float("nan"),
        "file_over_cross_entropy": 8 * len(data) / ideal["total"] if ideal["total"] > 0 else float("nan"),
        "decoder_bits": codec.decoder.bits(),
        "eq1_bound": dl_bound_sparse(l0q, codec.decoder.d_sae, bpv).total_bits,
    }


def feature_density(codec: Codec, x: np.ndarray) -> np.ndarray:
    """[d_sae] fraction of the samples of x [n, d_in] on which each feature's quantised latent is non-zero."""
    codes = codec.latents(x)
    return np.bincount(codes.indices, minlength=codec.decoder.d_sae) / max(codes.n, 1)


def measure_sae(sae, train: np.ndarray, test: np.ndarray, tol: float, device: str = "cpu") -> tuple[Codec, dict]:
    """The coarsest uniform step whose quantised test MSE is <= tol (precision.coarsest_step), the
    entropy model fit on the training split, and measure_codec's figures of the test split."""
    codec, report = fit_codec(sae, train, test, max_mse=tol, device=device)
    return codec, measure_codec(codec, test)


def measure_pca(train: np.ndarray, test: np.ndarray, tol: float) -> tuple[Codec, dict]:
    """The dense baseline at the same tolerance: PCA transform coding (baselines.match_pca: the
    number of components m and the coarsest step with the fewest bits meeting tol), measured as an
    SAE codec is. The returned figures add m."""
    match = match_pca(PCA.fit(train), train, test, tol)
    return match.codec, {"components": match.m, **measure_codec(match.codec, test)}
