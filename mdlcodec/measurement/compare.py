"""The measurement a researcher asks for: given SAEs (trained here or imported from a peer) and a
dataset, how many bits per sample (per token, for transformer activations) does each take to explain
the test split at one or several reconstruction tolerances, beside the dense alternative (PCA
transform coding)? Over several tolerances it is the rate-distortion curve of each SAE
(``plots.plot_rate_distortion``).

For each SAE: its latents of both splits, computed once for every tolerance; at each tolerance the
coarsest uniform step whose quantised test reconstruction meets it (``codec.precision.fit_codec``,
tables from the training split), then the test split coded into a real .mdlc file and read back
(``measure.measure_codec``). An SAE whose own unquantised error is above a tolerance cannot meet it
with any step: it is listed under "skipped" for that tolerance with the reason, and measured at the others.

Schema of the result (``SCHEMA``; a stable, documented contract for ``mdlcodec measure --json``):

- ``schema``: "mdlcodec.measure/2"; ``data``: {spec, name, n_train, n_test, d, test_variance (mean
  over dimensions of each dimension's variance), norm_cut: {quantile, threshold (norm), tokens
  (test tokens whose norm is at most the threshold), test_variance (theirs)}};
- ``tolerances``: [{max_mse, max_fvu}] in the order given: the bound on test MSE (mean over samples
  and dimensions) and the same as a fraction of the test split's variance (FVU):
  max_mse = max_fvu * test_variance;
- ``rows``: one per (tolerance, method) that met it, tolerance by tolerance in the order given, then
  shortest file first, each with max_mse, max_fvu (its tolerance), method ("sae" | "pca"), name,
  source, arch, width (d_sae, or PCA's components), k, step, l0 (non-zero bins per sample), mse,
  fvu (quantised reconstruction of the test split), fvu_below_norm_cut (the same over the tokens
  of data.norm_cut, over their own variance), bits_per_value, and in bits per sample: file_bits,
  payload_bits, activity_bits, values_bits (the payload by part), header_bits, cross_entropy_bits,
  model_entropy_bits; beside them payload_over_cross_entropy, decoder_bits (whole decoder, float32,
  the two-part term), file_with_decoder_bits (file_bits + decoder_bits / n_test), decoded_exactly,
  and file (an SAE's .mdlc path when kept, else null; PCA's file is measured, not kept);
- ``stored``: what a user would store instead, whatever the tolerance (near-lossless, so not
  matched to it): float16 and int8 + zstd (``baselines``), each {name, file_bits, mse, fvu};
- ``skipped``: [{max_mse, max_fvu, name, source, reason}]; ``versions``, ``machine``.
- with ``rdo`` (``mdlcodec measure --rdo``), each SAE row adds ``optimised``: the same test split coded
  by the shortest of per-feature steps and rate-distortion optimised encoding within the tolerance
  (``codec.rd_fit.fit_rd_codec``; same decoder and format), {file_bits, payload_bits,
  cross_entropy_bits, mse, fvu, fvu_below_norm_cut, l0, rdo_lambda, per_feature, file}, and
  ``best_file_bits``, the shorter of the two files, which then orders the rows (plain rows keep
  their own figures).
- with ``chow_liu`` (``mdlcodec measure --chow-liu``), each SAE row adds ``chow_liu``: the same
  quantised latents (the plain code's step) coded with a Chow-Liu forest over the features learnt
  from the training split's codes (``codec.hierarchy``), {file_bits, payload_bits,
  cross_entropy_bits, edges, table_bits (the forest's tables, bits, once)}.
- with ``two_part`` (``mdlcodec measure --two-part``), each SAE row and PCA's add ``two_part``: the
  honest two-part code (``measure.measure_two_part``: decoder rows coded at the precision the
  tolerance allows, chosen with the latents' step for the shortest total on this test split, written
  as a self-contained file and read back) {levels, step, decoder_bits (the model section, once),
  file_bits (the rest, per sample), cross_entropy_bits, decoder_bits_float32, mse, fvu, total_bits,
  file (NAME.two_part.mdlc in the output folder when kept, else null)},
  and an SAE's ``break_even_samples_vs_pca``: from how many samples its two parts are no longer
  than PCA's at the same tolerance (null: never). Optional fields: absent without it.

Version 1 (mdlcodec 0.x before the curves) had one tolerance: ``tolerance`` {max_mse, max_fvu,
test_variance} instead of ``tolerances``, rows and skipped without max_mse/max_fvu, no norm cut.
Kept files are NAME.mdlc (NAME.optimised.mdlc, NAME.two_part.mdlc) for one tolerance, and
NAME.fvuF.mdlc (NAME.mseM.mdlc for MSE tolerances) and so on for several.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdlcodec.baselines import PCA, IntCompressed, StoredFloat, distortion
from mdlcodec.codec import Codec
from mdlcodec.codec.codec import DEFAULT_CHUNK
from mdlcodec.codec.rate.precision import fit_codec
from mdlcodec.codec.rate.two_part import break_even
from mdlcodec.codec.sae_batches import latents_in_chunks
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.core.runinfo import machine, versions
from mdlcodec.measurement.measure import measure_codec, measure_optimised, measure_pca, measure_two_part
from mdlcodec.measurement.tokens import DEFAULT_NORM_QUANTILE, NormCut, mean_variance
from mdlcodec.models.peers import as_sae

SCHEMA = "mdlcodec.measure/2"


def _values(bound, what: str, top: float | None) -> list[float]:
    """A tolerance given as a number or a sequence of numbers -> a list of finite floats in (0, top]
    (MdlcodecError naming the value otherwise, a repeated value, or two that would name one kept
    file: equal in their first 6 significant digits)."""
    values = list(bound) if isinstance(bound, (list, tuple, np.ndarray)) else [bound]
    if not values:
        raise MdlcodecError(f"{what}: no tolerance given", param="tolerance")
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise MdlcodecError(f"{what}: {v!r} is not a number", param="tolerance") from None
        if not np.isfinite(f) or f <= 0 or (top is not None and f > top):
            raise MdlcodecError(f"{what}: {v!r} is out of (0, {top:g}]" if top is not None else
                                f"{what}: {v!r} is not a finite number > 0", param="tolerance")
        if f in out:
            raise MdlcodecError(f"{what}: {f:g} is given twice", param="tolerance")
        twin = next((o for o in out if f"{o:g}" == f"{f:g}"), None)  # the files' names (NAME.fvuF.mdlc) use :g
        if twin is not None:
            raise MdlcodecError(f"{what}: {v!r} and {twin!r} would name one file ({f:g}): give tolerances that differ "
                                "in their first 6 significant digits", param="tolerance")
        out.append(f)
    return out


def tolerances(variance: float, max_mse=None, max_fvu=None) -> list[dict]:
    """[{max_mse, max_fvu}] from exactly one of the two bounds, each a number or a sequence of
    numbers (FVU in (0, 1], MSE > 0), in the order given; max_mse = max_fvu * variance, the test
    split's mean_variance. MdlcodecError if not exactly one is given or a value is bad."""
    if (max_mse is None) == (max_fvu is None):
        raise MdlcodecError("give one tolerance: a maximum test MSE or a maximum FVU", param="tolerance")
    if max_fvu is not None:
        return [{"max_mse": float(f * variance), "max_fvu": f} for f in _values(max_fvu, "max_fvu", 1.0)]
    return [{"max_mse": m, "max_fvu": float(m / variance) if variance > 0 else None}
            for m in _values(max_mse, "max_mse", None)]


def tolerance(test: np.ndarray, max_mse: float | None = None, max_fvu: float | None = None) -> dict:
    """{max_mse, max_fvu, test_variance} from one of the two bounds (MdlcodecError if not exactly one)."""
    if isinstance(max_mse, (list, tuple)) or isinstance(max_fvu, (list, tuple)):
        raise MdlcodecError("give one tolerance here, not a list", param="tolerance")
    variance = mean_variance(test)
    return {**tolerances(variance, max_mse, max_fvu)[0], "test_variance": variance}


def stored_rows(test: np.ndarray) -> list[dict]:
    """float16 and int8 + zstd on the test split: file bits per sample (every byte they write),
    MSE and FVU of what they decode to."""
    out = []
    for method in (StoredFloat("float16"), IntCompressed("zstd", 8)):
        data = method.encode(test)
        d = distortion(test, method.decode(data))
        out.append({"name": method.name, "file_bits": 8 * len(data) / len(test), "mse": d["mse"], "fvu": d["fvu"]})
    return out


def _two_part(codec, ds, tol: dict, skipped: list, name: str, source: str, path: Path | None,
              latents: tuple | None = None) -> dict | None:
    try:
        return measure_two_part(codec, ds.train, ds.test, tol["max_mse"], path, latents)[1]
    except MdlcodecError as e:
        skipped.append({**tol, "name": f"{name} (two-part)", "source": source, "reason": str(e)})
        return None


def _chow_liu(sae, ds, plain, latents: tuple, device: str, path: Path | None) -> tuple[Codec, dict]:
    """The plain code's quantised latents coded under a Chow-Liu forest (tables of the training split)."""
    step = float(plain.quantiser.step[0])
    codec, report = fit_codec(sae, ds.train, ds.test, step=step, device=device, hierarchy="chowliu", latents=latents)
    m = measure_codec(codec, ds.test, path, z_test=latents[1])
    h = report.get("hierarchy", {})
    return codec, {"file_bits": m["file_bits"], "payload_bits": m["payload_bits"],
                   "cross_entropy_bits": m["cross_entropy_bits"]["total"], "edges": h.get("edges", 0),
                   "table_bits": h.get("table_bits", 0.0), "file": str(path) if path is not None else None}


def _break_even(rows: list[dict]) -> None:
    """Each SAE row's two-part break-even against PCA's at its tolerance: the test samples from which
    the SAE's file plus its coded decoder is no longer than PCA's (None: never; 0: always)."""
    for r in rows:
        pca = next((p["two_part"] for p in rows if p["method"] == "pca" and p.get("two_part")
                    and p["max_mse"] == r["max_mse"]), None)
        if r["method"] == "sae" and r.get("two_part") and pca is not None:
            t = r["two_part"]
            t["break_even_samples_vs_pca"] = break_even(t["file_bits"], t["decoder_bits"], pca["file_bits"],
                                                        pca["decoder_bits"])


def _row(tol: dict, method: str, name: str, source: str, m: dict, n_test: int, **extra) -> dict:
    ce = m["cross_entropy_bits"]
    return {**tol, "method": method, "name": name, "source": source, **extra, "step": m["step"],
            "l0": m["quantised_l0"], "mse": m["quantised_test_mse"], "fvu": m["quantised_fvu"],
            "fvu_below_norm_cut": m["quantised_fvu_below_norm_cut"], "bits_per_value": m["bits_per_value"],
            "file_bits": m["file_bits"], "payload_bits": m["payload_bits"],
            "activity_bits": m["payload_activity_bits"], "values_bits": m["payload_values_bits"],
            "header_bits": m["header_bits"], "cross_entropy_bits": ce["total"],
            "model_entropy_bits": m["model_entropy_bits"],
            "payload_over_cross_entropy": m["payload_over_cross_entropy"], "decoder_bits": m["decoder_bits"],
            "file_with_decoder_bits": m["file_bits"] + m["decoder_bits"] / n_test, "decoded_exactly": True}


def measure_saes(saes: list[tuple[str, str, object]], ds, max_mse=None, max_fvu=None, pca: bool = True,
                 out_dir: str | Path | None = None, device: str = "cpu", progress: Progress = quiet,
                 keep_tables: bool = False, stored: bool = True, rdo: bool = False, two_part: bool = False,
                 norm_quantile: float = DEFAULT_NORM_QUANTILE, chow_liu: bool = False) -> dict:
    """Measure each (name, source, SAE) of ``saes`` and, with ``pca``, PCA transform coding on the
    Dataset ``ds`` at each tolerance of max_mse or max_fvu (exactly one: a number or a sequence of
    them; schema in this module's docstring). Each SAE's latents of both splits are computed once.
    With ``out_dir`` (an existing folder) each SAE's test file is kept there (NAME.mdlc, or
    NAME.fvuF.mdlc for several tolerances); with ``keep_tables`` the tables fitted here join the archive of
    the SAE's folder (``source``; Codec.save_tables with current=False), so that those files decode
    with the model folder; its current tables stay. With ``stored``, float16 and int8 + zstd beside
    them (``stored_rows``); with ``rdo``, each SAE's optimised encoding beside its plain one, with
    ``chow_liu`` its Chow-Liu code; FVU
    also over the test tokens whose norm is at most the ``norm_quantile`` quantile (``tokens.NormCut``)."""
    variance = mean_variance(ds.test)
    tols = tolerances(variance, max_mse, max_fvu)
    cut = NormCut.of(ds.test, norm_quantile)
    n_test = len(ds.test)
    rows, skipped = [], []

    def path(name: str, tol: dict, suffix: str = "") -> Path | None:
        """OUT_DIR/NAME[.fvuF | .mseM]SUFFIX.mdlc, the tolerance named only when there are several."""
        if out_dir is None:
            return None
        tag = "" if len(tols) == 1 else (f".fvu{tol['max_fvu']:g}" if max_fvu is not None else f".mse{tol['max_mse']:g}")
        return Path(out_dir) / f"{name}{tag}{suffix}.mdlc"

    saes = [(name, source, as_sae(sae)) for name, source, sae in saes]  # objects in memory: models.peers.objects
    for name, source, sae in saes:  # every SAE fits the data before any work
        if sae.cfg.d_in != ds.d:
            raise MdlcodecError(f"SAE {name} ({source}) takes inputs of width {sae.cfg.d_in}, {ds.spec} has width {ds.d}")
    for name, source, sae in saes:
        progress(f"{name}: the SAE's latents of the training and test splits")
        encoder = Codec.sae_sparse_encoder(sae, device)
        latents = tuple(latents_in_chunks(encoder, x, ds.d, what, DEFAULT_CHUNK)
                        for x, what in ((ds.train, "training data"), (ds.test, "test data")))
        for tol in tols:
            at = f"test MSE <= {tol['max_mse']:.6g} (FVU <= {tol['max_fvu']:.4g})"
            progress(f"{name}: coarsest step for {at}")
            try:
                codec, _ = fit_codec(sae, ds.train, ds.test, max_mse=tol["max_mse"], device=device, hierarchy="flat",
                                     latents=latents)
            except MdlcodecError as e:
                if getattr(e, "param", None) != "max_mse":
                    raise
                skipped.append({**tol, "name": name, "source": source, "reason": str(e)})
                progress(f"{name}: skipped at {at} ({e})")
                continue
            progress(f"{name}: encode the test split, read it back")
            m = measure_codec(codec, ds.test, path(name, tol), z_test=latents[1], cut=cut)
            if keep_tables:
                codec.save_tables(source, current=False)
            cfg = sae.cfg
            rows.append(_row(tol, "sae", name, source, m, n_test, arch=cfg.arch, width=cfg.d_sae, k=cfg.k,
                             file=str(path(name, tol)) if out_dir is not None else None))
            if rdo:
                progress(f"{name}: per-feature steps and RDO for {at}")
                opt, rows[-1]["optimised"] = measure_optimised(
                    sae, ds.train, ds.test, tol["max_mse"], device, path(name, tol, ".optimised"), latents=latents,
                    cut=cut, progress=lambda line, name=name: progress(f"{name}: {line}"))
                if keep_tables:
                    opt.save_tables(source, current=False)
                rows[-1]["best_file_bits"] = min(m["file_bits"], rows[-1]["optimised"]["file_bits"])
            if chow_liu:
                progress(f"{name}: Chow-Liu forest of the training codes, the test split coded with it")
                forest, rows[-1]["chow_liu"] = _chow_liu(sae, ds, codec, latents, device, path(name, tol, ".chowliu"))
                if keep_tables:
                    forest.save_tables(source, current=False)
            if two_part:
                progress(f"{name}: decoder precision and step of the two-part code")
                rows[-1]["two_part"] = _two_part(codec, ds, tol, skipped, name, source,
                                                 path(name, tol, ".two_part"), latents)
    if pca:
        progress("PCA: principal components of the training split")
        model = PCA.fit(ds.train)
        for tol in tols:
            progress(f"PCA: components and step for test MSE <= {tol['max_mse']:.6g}")
            try:
                codec, m = measure_pca(ds.train, ds.test, tol["max_mse"], model=model, cut=cut)
            except MdlcodecError as e:
                skipped.append({**tol, "name": "pca", "source": "baselines.match_pca", "reason": str(e)})
                continue
            rows.append(_row(tol, "pca", f"pca m={m['components']}", "baselines.match_pca", m, n_test,
                             arch="pca", width=m["components"], k=None, file=None))
            if two_part:
                progress("PCA: decoder precision and step of the two-part code")
                rows[-1]["two_part"] = _two_part(codec, ds, tol, skipped, "pca", "baselines.match_pca",
                                                 path("pca", tol, ".two_part"))
    if two_part:
        _break_even(rows)
    order = {t["max_mse"]: i for i, t in enumerate(tols)}
    rows.sort(key=lambda r: (order[r["max_mse"]], r.get("best_file_bits", r["file_bits"])))
    skipped.sort(key=lambda r: order.get(r["max_mse"], 0))
    return {"schema": SCHEMA,
            "data": {"spec": ds.spec, "name": ds.name, "n_train": int(len(ds.train)), "n_test": n_test, "d": ds.d,
                     "test_variance": variance, "norm_cut": cut.summary()},
            "tolerances": tols, "rows": rows,
            "stored": stored_rows(ds.test) if stored else [], "skipped": skipped, "versions": versions(),
            "machine": machine()}


def _table(result: dict, tol: dict) -> list[str]:
    """The markdown lines of one tolerance's rows."""
    d, cut = result["data"], result["data"]["norm_cut"]
    rows = [r for r in result["rows"] if r["max_mse"] == tol["max_mse"]]
    lines = [f"Test split of {d['name']}: {d['n_test']:,} samples, d = {d['d']}, at test MSE <= {tol['max_mse']:.6g} "
             f"(FVU <= {tol['max_fvu']:.4g}). Bits per sample; FVU < q{cut['quantile']:g}: over the "
             f"{cut['tokens']:,} test samples of norm <= {cut['threshold']:.4g}.", "",
             "| method | width | k | L0 | FVU | FVU < q | file | payload | activity | values | header | cross-entropy "
             "| payload/cross-entropy | decoder bits | file + decoder |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    opt, cl = any("optimised" in r for r in rows), any("chow_liu" in r for r in rows)
    if opt:
        lines[2] = lines[2].replace("| file |", "| file | file (optimised) | payload (optimised) | FVU (optimised) |")
        lines[3] += "---:|---:|---:|"
    if cl:
        lines[2] = lines[2].replace("| file |", "| file | file (Chow-Liu) |", 1)
        lines[3] += "---:|"
    for r in rows:
        o, c = r.get("optimised"), r.get("chow_liu")
        extra = (f" {c['file_bits']:.2f} |" if c else " - |") if cl else ""
        extra += (f" {o['file_bits']:.2f} | {o['payload_bits']:.2f} | {o['fvu']:.4f} |" if o else " - | - | - |") if opt else ""
        lines.append(f"| {r['name']} | {r['width']} | {r['k'] if r['k'] is not None else '-'} | {r['l0']:.1f} "
                     f"| {r['fvu']:.4f} | {r['fvu_below_norm_cut']:.4f} | {r['file_bits']:.2f} |{extra} "
                     f"{r['payload_bits']:.2f} | {r['activity_bits']:.2f} "
                     f"| {r['values_bits']:.2f} | {r['header_bits']:.2f} | {r['cross_entropy_bits']:.2f} "
                     f"| {r['payload_over_cross_entropy']:.5f} | {r['decoder_bits']:,} "
                     f"| {r['file_with_decoder_bits']:,.1f} |")
    two = [r for r in rows if r.get("two_part")]
    if two:
        lines += ["", "Two-part code (decoder rows coded at the precision the tolerance allows; self-contained file "
                  "read back):", "",
                  "| method | decoder levels | step | file bits/sample | decoder bits (once) | float32 decoder bits "
                  "| FVU | total bits | break-even samples vs PCA |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in two:
            t = r["two_part"]
            be = t.get("break_even_samples_vs_pca", "-") if r["method"] == "sae" else "-"
            be = "never" if be is None else (f"{be:,.0f}" if isinstance(be, float) else be)
            lines.append(f"| {r['name']} | {t['levels']} | {t['step']:.4g} | {t['file_bits']:.2f} | {t['decoder_bits']:,} "
                         f"| {t['decoder_bits_float32']:,} | {t['fvu']:.4f} | {t['total_bits']:,.0f} | {be} |")
    for s in result["skipped"]:
        if s["max_mse"] == tol["max_mse"]:
            lines.append(f"\n{s['name']} cannot meet the tolerance: {s['reason']}.")
    return lines


def markdown_table(result: dict) -> str:
    """One table per tolerance (its rows shortest file first, then a line per skipped SAE), then the stored baselines."""
    lines = []
    for tol in result["tolerances"]:
        lines += _table(result, tol) + [""]
    if result.get("stored"):
        lines.append("Stored instead (near-lossless, not matched to the tolerance): " + "; ".join(
            f"{s['name']} {s['file_bits']:,.0f} bits (FVU {s['fvu']:.1e})" for s in result["stored"]) + ".")
    return "\n".join(lines).rstrip("\n") + "\n"
