"""Baselines: what a user would otherwise do with activations, each as a method that writes real bytes.
May import core and codec (PCA transform coding is an mdlcodec Codec).

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
- ``distortion(x, x_hat)``: MSE, FVU and largest absolute error of any method's reconstruction.
- ``CodecMethod``: any mdlcodec ``Codec`` (an SAE's or a PCA's); with ``embed_model`` its files
  carry the decoder and tables (the two-part code).
"""

from mdlcodec.baselines.pca import (
           PCA,
           PCAMatch,
           match_pca,
           pca_candidates,
           pca_codec,
           pca_step_for_mse,
)
from mdlcodec.baselines.stored import (
           COMPRESSORS,
           CodecMethod,
           IntCompressed,
           Method,
           StoredFloat,
           distortion,
)

__all__ = ["COMPRESSORS", "CodecMethod", "IntCompressed", "Method", "PCA", "PCAMatch", "StoredFloat", "distortion",
           "match_pca", "pca_candidates", "pca_codec", "pca_step_for_mse"]
