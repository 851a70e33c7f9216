"""Choosing the quantiser: the coarsest step that keeps reconstruction error within a bound
(the paper's Appendix C, step 3)."""

from __future__ import annotations

import numpy as np

from mdlcodec.codec.entropy.hierarchy import prune_to_forest
from mdlcodec.codec.rate.quantiser import Quantiser
from mdlcodec.codec.sparse import SparseLatents
from mdlcodec.core.errors import CodecError
from mdlcodec.models.peers import as_sae

DEFAULT_RELATIVE_MSE = 0.01
"""Default bound: quantisation may add at most 1% to the SAE's own MSE."""
MSE_ROWS = 4096
"""Rows per chunk when an MSE is summed: no [n, d_in] reconstruction or float64 copy of x is built whole."""


def _rows(z: np.ndarray | SparseLatents, a: int, b: int) -> np.ndarray | SparseLatents:
    return SparseLatents(z.values[a:b], z.indices[a:b]) if isinstance(z, SparseLatents) else z[a:b]


def _chunked_mse(reconstruct, z: np.ndarray | SparseLatents, x: np.ndarray) -> float:
    """Mean over samples and dimensions of (reconstruct(z rows) - x rows)^2, in float64, MSE_ROWS rows
    at a time (x: [n, d_in], any row-sliceable matrix)."""
    n = len(x)
    total = 0.0
    for s in range(0, n, MSE_ROWS):
        diff = reconstruct(_rows(z, s, s + MSE_ROWS)).astype(np.float64) - np.asarray(x[s:s + MSE_ROWS], np.float64)
        total += float(np.einsum("ij,ij->", diff, diff))
    return total / (n * x.shape[1]) if n else float("nan")


def _reconstruct(decoder, z: np.ndarray | SparseLatents) -> np.ndarray:
    """The unquantised reconstruction of latents, dense or sparse. Sparse ones go straight to
    reconstruct_sparse: the same sums as Decoder.reconstruct of their dense matrix, which is never built."""
    return decoder.reconstruct_sparse(*z.csr()) if isinstance(z, SparseLatents) else decoder.reconstruct(z)


def _max_abs(z: np.ndarray | SparseLatents) -> float:
    """The largest |latent| (0 if none is active), or 1 for no samples: as np.abs(dense z).max()."""
    if isinstance(z, SparseLatents):
        return (float(np.abs(z.values).max()) if z.values.size else 0.0) if z.n else 1.0
    return float(np.abs(z).max()) if z.size else 1.0


def quantised_mse(decoder, z: np.ndarray | SparseLatents, x: np.ndarray, step: float,
                  parents: np.ndarray | None = None) -> float:
    """MSE (mean over samples and dimensions) of the reconstruction from latents z (dense [n, d_sae], or
    SparseLatents: the same figure) quantised with ``step`` (and, for a tree SAE's forest ``parents``,
    pruned to it: ``hierarchy.prune_to_forest``)."""
    sparse = isinstance(z, SparseLatents)
    q = Quantiser.uniform(step, decoder.d_sae if sparse else z.shape[1])

    def reconstruct(zc):
        codes = q.quantise_sparse(*zc) if sparse else q.quantise(zc)
        if parents is not None:
            codes = prune_to_forest(codes, parents)
        return decoder.reconstruct_sparse(codes.indptr, codes.indices, q.values(codes))
    return _chunked_mse(reconstruct, z, x)


def coarsest_step(decoder, z: np.ndarray | SparseLatents, x: np.ndarray, max_mse: float, iters: int = 24,
                  parents: np.ndarray | None = None) -> float:
    """The largest uniform step (latent units) whose quantised MSE on (z, x) is <= max_mse, by bisection
    on log2(step) (``parents``: see quantised_mse). Raises CodecError if the unquantised
    reconstruction already exceeds max_mse."""
    base = _chunked_mse(lambda zc: _reconstruct(decoder, zc), z, x)
    if base > max_mse:
        raise CodecError(f"the SAE's own test MSE {base:.6g} already exceeds the bound {max_mse:.6g}: "
                         "no quantisation step can meet it", param="max_mse")
    top = _max_abs(z)
    hi = np.log2(max(top, 1e-12)) + 1.0  # coarser than every latent: all bins round to 0 or +-1
    lo = hi - 30.0
    if quantised_mse(decoder, z, x, 2.0 ** hi, parents) <= max_mse:
        return float(2.0 ** hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        if quantised_mse(decoder, z, x, 2.0 ** mid, parents) <= max_mse:
            lo = mid
        else:
            hi = mid
    return float(np.float32(2.0 ** lo))


def default_step(decoder, z: np.ndarray | SparseLatents, x: np.ndarray, relative: float = DEFAULT_RELATIVE_MSE,
                 parents: np.ndarray | None = None) -> float:
    """The coarsest step adding at most ``relative`` (1%) to the unquantised MSE on held-out (z, x)."""
    base = _chunked_mse(lambda zc: _reconstruct(decoder, zc), z, x)
    return coarsest_step(decoder, z, x, base * (1 + relative), parents=parents)


def fit_codec(sae, train_x: np.ndarray, test_x: np.ndarray, step: float | None = None,
              max_mse: float | None = None, device: str = "cpu", hierarchy: str = "auto",
              latents: tuple[SparseLatents, SparseLatents] | None = None):
    """Choose the step on the test split (given, or the coarsest meeting ``max_mse``, or the default
    1% rule), fit the entropy model on the training split (with ``hierarchy``, see Codec.fit), and
    report the test figures (with a hierarchy, the flat code's bits beside them). ``latents``: the
    SAE's latents (z_train, z_test) of the two splits when the caller has them
    (``Codec.sae_sparse_encoder``), so that the SAE does not run again.

    Returns (codec, report); the report's bits are per sample of the test split: the test codes'
    cross-entropy under the tables (``cross_entropy_bits_per_sample``) and the tables' own model
    entropy (``model_entropy_bits_per_sample``), each {activity, values, total}.
    """
    from mdlcodec.codec.codec import Codec
    from mdlcodec.codec.decoder import Decoder, check_activations

    sae = as_sae(sae)
    decoder = Decoder.from_sae(sae)
    test_x = check_activations(test_x, decoder.d_in, "test data")
    # SparseLatents: no dense [n, d_sae] matrix anywhere below
    z = latents[1] if latents is not None else Codec.sae_sparse_encoder(sae, device)(test_x)
    codec_parents = Codec.tree_parents(sae, hierarchy)
    if step is None:
        step = (coarsest_step(decoder, z, test_x, max_mse, parents=codec_parents) if max_mse is not None
                else default_step(decoder, z, test_x, parents=codec_parents))
    codec = (Codec.fit_latents(sae, latents[0], step, device, hierarchy) if latents is not None
             else Codec.fit(sae, train_x, step, device, hierarchy))
    codes = codec.quantise(z)
    ideal = codec.chunk_coder.ideal_bits(codes)
    report = {
        "step": float(step),
        "test_mse": _chunked_mse(lambda zc: _reconstruct(decoder, zc), z, test_x),
        "quantised_test_mse": _chunked_mse(lambda zc: codec.reconstruct(codec.quantise(zc)), z, test_x),
        "quantised_l0": codes.nnz / max(codes.n, 1),
        "cross_entropy_bits_per_sample": {k: v / max(codes.n, 1) for k, v in ideal.items()},
        "bits_per_value": ideal["values"] / max(codes.nnz, 1),
        "model_entropy_bits_per_sample": codec.entropy_model.expected_bits_per_sample(),
    }
    forest = codec.entropy_model.hierarchy
    if forest is not None:
        flat = codec.with_hierarchy(None).chunk_coder.ideal_bits(codes)
        report["hierarchy"] = {"kind": forest.kind, "edges": forest.n_edges, "table_bits": codec.hierarchy_bits(),
                               "flat_cross_entropy_bits_per_sample": {k: v / max(codes.n, 1) for k, v in flat.items()}}
    return codec, report
