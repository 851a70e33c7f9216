"""Bits per sample against what users would otherwise do: run every method on a dataset's test
split, collect the figures, and write them as results JSON, a markdown table and a
rate-distortion PNG.

Every figure is measured, none is estimated:
- bits per sample = 8 * len(bytes) / n_test, from the bytes each method actually writes;
- distortion on the test split: MSE (mean over samples and dimensions) and FVU (summed squared
  error over summed squared deviation from the test mean), from decode(encode(x));
- throughput: samples per second of encode and of decode (wall clock, best of up to 5 runs while
  under a second in all), and the same times as ratios to int8+zstd's, measured in the same run;
  the machine (platform, cores, torch threads) is recorded beside them.
Lossy methods are compared at one test MSE (``max_mse``): the SAE codecs take the coarsest step
meeting it (``precision.coarsest_step``) and PCA the (components, step) with the fewest bits
meeting it (``baselines.match_pca``).

With ``rdo``, each SAE also gets the optimised encoding of the same decoder and format, beside its
plain rows: "+rdo" (the shortest of per-feature steps and rate-distortion optimised encoding
meeting max_mse, flat tables, ``codec.rd_fit.fit_rd_codec``) and "+rdo chow-liu" (that choice's
step and lambda refit with Chow-Liu tables, again to meet max_mse). The SAE's comparison with PCA
then uses the shortest file meeting max_mse among its rows, plain or optimised, flat or with a
hierarchy (``sae_best``; self-contained files aside).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mdlcodec.baselines import (
    COMPRESSORS,
    PCA,
    CodecMethod,
    IntCompressed,
    Method,
    StoredFloat,
    match_pca,
    pca_candidates,
)
from mdlcodec.benchmark.timing import measure
from mdlcodec.codec import Codec, EntropyModel, Quantiser
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.codec.entropy.hierarchy import Hierarchy, chow_liu, prune_to_forest
from mdlcodec.codec.rate.rd_fit import fit_rd_codec
from mdlcodec.codec.sparse import SparseLatents
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.core.runinfo import machine
from mdlcodec.workflow import fit_and_save, train_and_save

TIMING_REFERENCE = "int8+zstd"
PAPER_MNIST_MAX_MSE = 0.015
"""The paper's tolerance on MNIST test MSE (pixels in [0, 1]), Appendix C.2."""

RD_INT_BITS = (2, 3, 4, 5, 6, 7, 8)
RD_PCA_FACTORS = (0.1, 0.25, 0.5, 0.7, 1.4, 2.0, 2.8, 4.0)
RD_SAE_STEP_FACTORS = (0.25, 0.5, 2.0, 4.0, 8.0)
RD_PCA_CANDIDATES = 6  # component counts tried per rate-distortion point (12 at the matched point)


@dataclass
class SAEEntry:
    """An SAE to benchmark: a label for the table, the model, and where it came from."""

    label: str
    sae: object
    source: str


def _sae_rd(codec: Codec, z_train: SparseLatents, test: np.ndarray, factors) -> list[dict]:
    """Rate-distortion points of an SAE codec: its matched step times each factor, the entropy model
    refit on the training latents (sparse: values and indices) each time; bits from real bytes of the test split."""
    points = []
    for f in factors:
        step = float(np.float32(codec.quantiser.step[0] * f))
        q = Quantiser.uniform(step, codec.decoder.d_sae)
        em = EntropyModel.fit(q.quantise_sparse(*z_train))
        r = measure(CodecMethod(Codec(codec.decoder, q, em, codec.encoder), "rd"), test, timed=False)
        points.append({"step": step, "bits_per_sample": r["bits_per_sample"], "mse": r["mse"], "fvu": r["fvu"]})
    return points


def run_benchmark(train: np.ndarray, test: np.ndarray, max_mse: float, saes: list[SAEEntry] = (),
                  rd: bool = True, device: str = "cpu", progress: Progress = quiet,
                  pca_ms: list[int] | None = None, rdo: bool = False) -> dict:
    """Every method on the test split [n, d] (models fit on the training split), lossy ones matched
    at test MSE ``max_mse``. Returns a JSON-serialisable dict: "methods" (one row per method, see
    ``measure``), "rd" (rate-distortion points per lossy family), "comparison" (SAE codecs against
    PCA at max_mse), "skipped" (lossy methods that cannot meet max_mse, such as an SAE whose own
    unquantised test MSE is above it, each with the reason; the others are still measured),
    "machine". ``pca_ms``: the component counts PCA tries (default
    ``baselines.pca_candidates``); ``rdo``: the "+rdo" rows and comparison (the module's docstring),
    minutes per SAE on a few CPU cores."""
    from mdlcodec.codec.decoder import Decoder

    train = np.ascontiguousarray(train, np.float32)
    test = np.ascontiguousarray(test, np.float32)
    rows: list[dict] = []
    curves: dict[str, list[dict]] = {}

    methods: list[Method] = [StoredFloat("float32"), StoredFloat("float16")]
    methods += [IntCompressed(c, 8) for c in COMPRESSORS]
    for m in methods:
        progress(f"{m.name}")
        rows.append(measure(m, test))
    if rd:
        curves["float16"] = [{"bits_per_sample": rows[1]["bits_per_sample"], "mse": rows[1]["mse"]}]

    progress("PCA: fit and search (components, step) for the target MSE")
    skipped: list[dict] = []  # lossy methods that cannot meet max_mse: {"method", "reason", ...}
    t = time.perf_counter()
    pca = PCA.fit(train)
    match = pca_row = None
    try:
        match = match_pca(pca, train, test, max_mse, pca_ms)
    except MdlcodecError as e:  # the other methods are still measured
        skipped.append({"method": "pca", "reason": str(e)})
        progress(f"PCA: skipped ({e})")
    if match is not None:
        search_s = time.perf_counter() - t
        params = {"components": match.m, "search": match.search, "search_s": search_s}
        pca_label = f"pca m={match.m}"
        rows.append(measure(CodecMethod(match.codec, pca_label, params=params), test))
        rows.append(measure(CodecMethod(match.codec, f"{pca_label} self-contained", embed_model=True,
                                        params={"components": match.m}), test))
        pca_row = rows[-2]

    comparison = []
    for entry in saes:
        progress(f"SAE {entry.label}: step for MSE <= {max_mse:g}")
        dec = Decoder.from_sae(entry.sae)
        z_test = Codec.sae_sparse_encoder(entry.sae, device)(test)  # SparseLatents: no dense [n, d_sae] latents
        own_mse = float(np.mean((dec.reconstruct_sparse(*z_test.csr()).astype(np.float64) - test) ** 2))
        if own_mse > max_mse:  # quantisation only adds error: no step can meet the target
            reason = f"test MSE {own_mse:.6g} before quantisation, above the target {max_mse:g}"
            skipped.append({"method": f"sae {entry.label}", "source": entry.source,
                            "unquantised_test_mse": own_mse, "reason": reason})
            progress(f"SAE {entry.label}: skipped ({reason})")
            continue
        codec, _ = fit_and_save(entry.sae, train, test, max_mse=max_mse, device=device, hierarchy="flat")
        step = float(codec.quantiser.step[0])
        codes_train = codec.latents(train, DEFAULT_CHUNK)
        codes_test = codec.quantise(z_test)
        extra = {"source": entry.source, "arch": entry.sae.cfg.arch, "k": entry.sae.cfg.k,
                 "unquantised_test_mse": own_mse, "l0": codes_test.nnz / len(test),
                 "bits_per_value": codec.chunk_coder.ideal_bits(codes_test)["values"] / max(codes_test.nnz, 1),
                 "model_entropy_bits_per_sample": codec.entropy_model.expected_bits_per_sample()["total"]}
        progress(f"SAE {entry.label}: encode/decode")
        label = f"sae {entry.label}"
        rows.append(measure(CodecMethod(codec, label, params=extra), test))
        sae_row = rows[-1]
        rows.append(measure(CodecMethod(codec, f"{label} self-contained", embed_model=True), test))
        forests = [("chow-liu", chow_liu(codes_train))]
        if hasattr(entry.sae, "parents"):  # a tree SAE: its own forest, coded as a tree
            parents = entry.sae.parents.cpu().numpy()
            forests.insert(0, ("tree", Hierarchy.count(prune_to_forest(codes_train, parents), parents, "tree")))
        for name, forest in forests:
            progress(f"SAE {entry.label}: encode/decode with the {name} hierarchy")
            coded = codec.with_hierarchy(forest)
            rows.append(measure(CodecMethod(coded, f"{label} {name}", params={
                **extra, "hierarchy": name, "edges": forest.n_edges, "hierarchy_table_bits": coded.hierarchy_bits(),
                "model_entropy_bits_per_sample": coded.entropy_model.expected_bits_per_sample()["total"]}), test))
        if rdo:
            _rdo_rows(entry.sae, label, extra, train, test, max_mse, device, rows, progress)
            # the SAE's description length: its shortest file meeting max_mse, decoder and tables outside
            best_row = min((r for r in rows[rows.index(sae_row):] if r["mse"] <= max_mse
                            and not r["params"].get("embed_model")), key=lambda r: r["bits_per_sample"])
        if pca_row is not None:
            comparison.append({
                "sae": label, "sae_bits_per_sample": sae_row["bits_per_sample"], "sae_mse": sae_row["mse"],
                "pca": pca_label, "pca_bits_per_sample": pca_row["bits_per_sample"], "pca_mse": pca_row["mse"],
                "shorter": label if sae_row["bits_per_sample"] < pca_row["bits_per_sample"] else pca_label,
                "ratio_pca_over_sae": pca_row["bits_per_sample"] / sae_row["bits_per_sample"],
                "sae_with_decoder_bits_per_sample": sae_row["bits_per_sample"] + sae_row["model_bits_per_sample"],
                "pca_with_decoder_bits_per_sample": pca_row["bits_per_sample"] + pca_row["model_bits_per_sample"]})
            if rdo:
                c = comparison[-1]
                c.update(sae_best=best_row["method"], sae_best_bits_per_sample=best_row["bits_per_sample"],
                         sae_best_mse=best_row["mse"],
                         shorter=best_row["method"] if best_row["bits_per_sample"] < pca_row["bits_per_sample"]
                         else pca_label,
                         ratio_pca_over_sae=pca_row["bits_per_sample"] / best_row["bits_per_sample"],
                         sae_with_decoder_bits_per_sample=best_row["bits_per_sample"] + best_row["model_bits_per_sample"])
        if rd:
            progress(f"SAE {entry.label}: rate-distortion sweep")
            curves[label] = sorted(_sae_rd(codec, Codec.sae_sparse_encoder(entry.sae, device)(train), test,
                                           RD_SAE_STEP_FACTORS)
                                   + [{"step": step, "bits_per_sample": sae_row["bits_per_sample"],
                                       "mse": sae_row["mse"], "fvu": sae_row["fvu"]}], key=lambda p: p["mse"])

    if rd:
        for c in COMPRESSORS:
            progress(f"rate-distortion: int2..8+{c}")
            curves[f"int+{c}"] = [dict(bits=b, **{k: measure(IntCompressed(c, b), test, timed=False)[k]
                                                 for k in ("bits_per_sample", "mse", "fvu")}) for b in RD_INT_BITS]
        progress("rate-distortion: PCA at other target MSEs")
        pts = [] if match is None else [{"target_mse": max_mse, "components": match.m, "step": match.step,
                                         "bits_per_sample": pca_row["bits_per_sample"], "mse": pca_row["mse"],
                                         "fvu": pca_row["fvu"]}]
        for f in RD_PCA_FACTORS:
            try:
                mt = match_pca(pca, train, test, max_mse * f, pca_candidates(pca, test, max_mse * f, RD_PCA_CANDIDATES))
            except Exception as e:  # a target PCA cannot reach is just a missing point
                progress(f"  PCA at MSE {max_mse * f:g}: skipped ({e})")
                continue
            r = measure(CodecMethod(mt.codec, "rd"), test, timed=False)
            pts.append({"target_mse": max_mse * f, "components": mt.m, "step": mt.step,
                        "bits_per_sample": r["bits_per_sample"], "mse": r["mse"], "fvu": r["fvu"]})
        if pts:
            curves["pca"] = sorted(pts, key=lambda p: p["mse"])

    ref = next(r for r in rows if r["method"] == TIMING_REFERENCE)
    for r in rows:
        r["encode_time_ratio"] = r["encode_s"] / ref["encode_s"]
        r["decode_time_ratio"] = r["decode_s"] / ref["decode_s"]
    return {"n_train": len(train), "n_test": len(test), "d": test.shape[1], "max_mse": max_mse,
            "timing_reference": TIMING_REFERENCE, "methods": rows, "rd": curves, "comparison": comparison,
            "skipped": skipped,
            "machine": machine()}


def _rdo_rows(sae, label: str, extra: dict, train: np.ndarray, test: np.ndarray, max_mse: float, device: str,
              rows: list[dict], progress: Progress) -> None:
    """Append the "+rdo" and "+rdo chow-liu" rows of one SAE to ``rows`` (the module's docstring;
    fit_rd_codec meets max_mse on the test split by construction, and the comparison checks it)."""
    progress(f"SAE {label}: per-feature steps and RDO for MSE <= {max_mse:g} (minutes)")
    opt, report = fit_rd_codec(sae, train, test, max_mse, device=device, hierarchy="flat")
    chosen = report["chosen"]
    params = {**extra, "rdo_lambda": opt.rdo_lambda, "per_feature": chosen["per_feature"],
              "step_kappa": chosen["step_kappa"], "rdo_kappa": chosen["kappa"],
              "cross_entropy_bits_per_sample": chosen["bits_per_sample"]}
    rows.append(measure(CodecMethod(opt, f"{label} +rdo", params=params), test))
    progress(f"SAE {label}: the same with the chow-liu hierarchy")
    config = (chosen["step_kappa"], chosen["kappa"])
    coded, rep = fit_rd_codec(sae, train, test, max_mse, device=device, hierarchy="chowliu",
                              configs=[] if config == (None, None) else [config], include_plain=config == (None, None))
    rows.append(measure(CodecMethod(coded, f"{label} +rdo chow-liu", params={
        **params, "rdo_lambda": coded.rdo_lambda, "hierarchy": "chow-liu", "hierarchy_table_bits": coded.hierarchy_bits(),
        "cross_entropy_bits_per_sample": rep["chosen"]["bits_per_sample"]}), test))


# ---------------------------------------------------------------------------- models for it

DEFAULT_WIDTH, DEFAULT_K, DEFAULT_EPOCHS = 256, 24, 100
"""The SAE the bench trains on data without ground truth (MNIST-sized): BatchTopK, width 256, k 24."""


def bench_sae_config(ds, width: int | None = None, k: int | None = None):
    """The SAE the bench trains when it is given none: BatchTopK; on synthetic data as wide as the
    number of true features with k the true expected L0, otherwise width 256 and k 24 (either
    overridden by ``width``/``k``)."""
    from mdlcodec.models import SAEConfig

    if ds.truth is not None:
        width = width or len(ds.truth.probs)
        k = k or max(1, round(float(ds.truth.probs.sum())))
    return SAEConfig(arch="batchtopk", d_in=ds.d, d_sae=width or DEFAULT_WIDTH, k=k or DEFAULT_K)


def train_bench_sae(ds, cfg, epochs: int = DEFAULT_EPOCHS, device: str = "cpu", seed: int = 0,
                    progress: bool = False, model_dir=None, overwrite: bool = False) -> tuple[object, dict]:
    """Train cfg on the dataset's training split (early stopping on a held-out tenth of it) and save it
    to model_dir when given, before anything is measured; returns the SAE and what to report about
    its training (seconds of wall clock included)."""
    from mdlcodec.models import TrainConfig

    t = time.perf_counter()
    sae, res = train_and_save(cfg, ds.train, TrainConfig(epochs=epochs, device=device, seed=seed, progress=progress),
                              model_dir, overwrite)
    return sae.cpu(), {"arch": cfg.arch, "d_sae": cfg.d_sae, "k": cfg.k, "epochs": len(res.history),
                       "best_epoch": res.best_epoch, "seed": seed, "seconds": time.perf_counter() - t}


def default_max_mse(ds, saes: list[SAEEntry]) -> float:
    """The target test MSE when none is given: the paper's 0.015 on MNIST; otherwise 1% above the
    largest unquantised test MSE of the SAEs (the codec's default rule)."""
    from mdlcodec.core.errors import DataError
    from mdlcodec.models import evaluate

    if ds.image_shape == (28, 28) and ds.spec.startswith("mnist"):
        return PAPER_MNIST_MAX_MSE
    if not saes:
        raise DataError("no SAE to set the target MSE from", param="max_mse")
    return 1.01 * max(evaluate(e.sae.cpu(), ds.test)["mse"] for e in saes)
