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

import io
import tempfile
from pathlib import Path

import numpy as np

from mdlcodec.baselines import PCA, match_pca
from mdlcodec.codec import Codec, SparseLatents, encode_codes_file, inspect_file
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.codec.format.container import Reader
from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.codec.rate.rd_fit import fit_rd_codec
from mdlcodec.codec.rate.two_part import fit_two_part
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.measurement.tokens import NormCut
from mdlcodec.theory import dl_bound_sparse


def measure_codec(codec: Codec, test: np.ndarray, path: str | Path | None = None, embed_model: bool = False,
                  z_test: SparseLatents | None = None, cut: NormCut | None = None) -> dict:
    """Bits per test sample of ``codec``: cross-entropy, and payload and file of the real .mdlc file
    of the test split (written to ``path``, or to a temporary file removed after), read back through
    ``codec.files.inspect_file``; and the quantised MSE and FVU. With ``embed_model`` the file is
    self-contained and is read back, and checked, through its own model section alone. ``z_test``:
    the SAE's latents of the test split when the caller has them (``Codec.latents``' z), so the SAE
    does not run again; ``cut``: the tokens below a norm quantile, over which the FVU is given too.
    Raises MdlcodecError if the file does not decode to exactly the quantised latents.

    Returns: step, quantised_test_mse, quantised_fvu, quantised_l0 (non-zero bins per sample),
    bits_per_value (value bits per non-zero bin), cross_entropy_bits {activity, values, total},
    payload_bits, payload_activity_bits, payload_values_bits, header_bits (file less payload and
    model section), file_bits, model_entropy_bits (the tables' expected bits), all bits/sample;
    payload_over_cross_entropy, file_over_cross_entropy, decoder_bits (whole decoder, bits),
    model_bits (the file's model section with its framing, bits, once; 0 unless ``embed_model``),
    eq1_bound (bits/sample); with ``cut``, quantised_fvu_below_norm_cut (FVU over its tokens).
    """
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            return measure_codec(codec, test, Path(tmp) / "test.mdlc", embed_model, z_test, cut)
    n = len(test)
    codes = codec.latents(test, DEFAULT_CHUNK, z=z_test)
    ideal = codec.chunk_coder.ideal_bits(codes)
    encode_codes_file(codec, codes, path, DEFAULT_CHUNK, overwrite=True, embed_model=embed_model)
    info = inspect_file(path, None if embed_model else codec, test)
    data = Path(path).read_bytes()
    reader = Codec.from_model_section(Reader.open(io.BytesIO(data)).model_bytes) if embed_model else codec
    if reader.decode_latents(data) != codes:  # the latents, so no second reconstruction
        raise MdlcodecError(f"{path} does not decode to its quantised latents")
    b = info["bits_per_sample"]
    l0q = codes.nnz / n
    bpv = ideal["values"] / max(codes.nnz, 1)
    steps = codec.quantiser.step
    below = {} if cut is None else {"quantised_fvu_below_norm_cut": cut.fvu(codec, codes, test)}
    return {
        "step": float(steps[0]) if np.all(steps == steps[0]) else None,
        "quantised_test_mse": info["mse"],
        "quantised_fvu": info["fvu"],
        "quantised_l0": l0q,
        "bits_per_value": bpv,
        "cross_entropy_bits": {k: v / n for k, v in ideal.items()},
        "payload_bits": b["payload"],
        "payload_activity_bits": b["activity"],
        "payload_values_bits": b["values"],
        "header_bits": b["header"],
        "file_bits": b["file"],
        "model_entropy_bits": info["model_entropy_bits_per_sample"]["total"],
        "payload_over_cross_entropy": b["payload"] * n / ideal["total"] if ideal["total"] > 0 else float("nan"),
        "file_over_cross_entropy": b["file"] * n / ideal["total"] if ideal["total"] > 0 else float("nan"),
        "decoder_bits": codec.decoder.bits(),
        "model_bits": info["bits"]["model"],
        "eq1_bound": dl_bound_sparse(l0q, codec.decoder.d_sae, bpv).total_bits, **below,
    }


def feature_density(codec: Codec, x: np.ndarray) -> np.ndarray:
    """[d_sae] fraction of the samples of x [n, d_in] on which each feature's quantised latent is non-zero."""
    codes = codec.latents(x, DEFAULT_CHUNK)  # chunk by chunk: a shard folder's split is not read whole
    return np.bincount(codes.indices, minlength=codec.decoder.d_sae) / max(codes.n, 1)


def measure_sae(sae, train: np.ndarray, test: np.ndarray, tol: float, device: str = "cpu") -> tuple[Codec, dict]:
    """The coarsest uniform step whose quantised test MSE is <= tol (precision.coarsest_step), the
    entropy model fit on the training split, and measure_codec's figures of the test split."""
    codec, report = fit_codec(sae, train, test, max_mse=tol, device=device)
    return codec, measure_codec(codec, test)


def measure_optimised(sae, train: np.ndarray, test: np.ndarray, tol: float, device: str = "cpu",
                      path: str | Path | None = None, latents: tuple | None = None,
                      cut: NormCut | None = None, progress: Progress = quiet) -> tuple[Codec, dict]:
    """The SAE's optimised encoding at test MSE <= tol: the shortest of per-feature steps and
    rate-distortion optimised encoding, plain included (``codec.rd_fit.fit_rd_codec``, flat tables
    from the training split; same decoder and format), its test file written to ``path`` when given
    (else measured in a temporary file). ``latents``: the SAE's (z_train, z_test) when the caller
    has them; ``cut``: see measure_codec; ``progress``: told each step of the search.

    Returns (codec, figures): file_bits, payload_bits, cross_entropy_bits (total), all bits per
    test sample; mse, fvu (quantised test reconstruction), l0 (non-zero bins per sample),
    rdo_lambda (None: plain encoding), per_feature (bool: per-feature steps), file (str or None),
    and with ``cut`` fvu_below_norm_cut."""
    codec, report = fit_rd_codec(sae, train, test, tol, device=device, hierarchy="flat", latents=latents,
                                 progress=progress)
    m = measure_codec(codec, test, path, z_test=None if latents is None else latents[1], cut=cut)
    below = {"fvu_below_norm_cut": m["quantised_fvu_below_norm_cut"]} if cut is not None else {}
    return codec, {**below, "file_bits": m["file_bits"], "payload_bits": m["payload_bits"],
                   "cross_entropy_bits": m["cross_entropy_bits"]["total"], "mse": m["quantised_test_mse"],
                   "fvu": m["quantised_fvu"], "l0": m["quantised_l0"], "rdo_lambda": codec.rdo_lambda,
                   "per_feature": report["chosen"]["per_feature"], "file": str(path) if path is not None else None}


def measure_pca(train: np.ndarray, test: np.ndarray, tol: float, path: str | Path | None = None,
                model: PCA | None = None, cut: NormCut | None = None) -> tuple[Codec, dict]:
    """The dense baseline at the same tolerance: PCA transform coding (baselines.match_pca: the
    number of components m and the coarsest step with the fewest bits meeting tol), measured as an
    SAE codec is (its test file written to ``path`` when given). ``model``: PCA fit on train when the
    caller has it (several tolerances). The returned figures add m."""
    match = match_pca(model if model is not None else PCA.fit(train), train, test, tol)
    return match.codec, {"components": match.m, **measure_codec(match.codec, test, path, cut=cut)}


def measure_two_part(codec: Codec, train: np.ndarray, test: np.ndarray, tol: float,
                     path: str | Path | None = None, latents: tuple | None = None) -> tuple[Codec, dict]:
    """The honest two-part code of the test split at test MSE <= tol (``codec.two_part``: decoder rows
    coded at the precision the tolerance allows, together with the latents' step), written as a real
    self-contained file and read back (kept at ``path`` when given: it decodes with no model folder).
    ``latents``: the encoder's (z_train, z_test) when the caller has them.

    Returns (codec, figures): levels (decoder levels a side), step, decoder_bits (the file's model
    section with its framing: coded rows, bias, tables; bits, once), file_bits (the rest of the file,
    bits per test sample), cross_entropy_bits (bits per sample), decoder_bits_float32 (the plain
    codec's model section, float32 rows and its tables, without the 12 framing bytes), mse, fvu (of
    the file read back through its own model section), total_bits (file_bits * n_test + decoder_bits)."""
    coded, report = fit_two_part(codec, train, test, tol, latents=latents)
    m = measure_codec(coded, test, path, embed_model=True, z_test=None if latents is None else latents[1])
    n, model_bits = len(test), m["model_bits"]
    file_bits = m["file_bits"] - model_bits / n
    return coded, {"levels": report["chosen"]["levels"], "step": report["chosen"]["step"],
                   "decoder_bits": model_bits, "file_bits": file_bits,
                   "cross_entropy_bits": m["cross_entropy_bits"]["total"],
                   "decoder_bits_float32": 8 * len(codec.model_section()), "mse": m["quantised_test_mse"],
                   "fvu": m["quantised_fvu"], "total_bits": file_bits * n + model_bits,
                   "file": str(path) if path is not None else None}
