"""The measurement a researcher asks for: given SAEs (trained here or imported from a peer) and a
dataset, how many bits per sample (per token, for transformer activations) does each take to explain
the test split at one reconstruction tolerance, beside the dense alternative (PCA transform coding)?

For each SAE: the coarsest uniform step whose quantised test reconstruction meets the tolerance
(``codec.precision.fit_codec``, tables from the training split), then the test split encoded to a
real .mdlc file and read back (``measure.measure_codec``). An SAE whose own unquantised error is
above the tolerance cannot meet it with any step: it is listed under "skipped" with the reason.

Schema of the result (``SCHEMA``; a stable, documented contract for ``mdlcodec measure --json``):

- ``schema``: "mdlcodec.measure/1"; ``data``: {spec, name, n_train, n_test, d};
- ``tolerance``: {max_mse, max_fvu, test_variance}: the bound on test MSE (mean over samples and
  dimensions), the same as a fraction of the test split's variance (FVU), and that variance (mean
  over dimensions of each dimension's variance): max_mse = max_fvu * test_variance;
- ``rows``: one per method that met the tolerance, shortest file first, each with
  method ("sae" | "pca"), name, source, arch, width (d_sae, or PCA's components), k, step,
  l0 (non-zero bins per sample), mse, fvu (quantised reconstruction of the test split),
  bits_per_value, and in bits per sample: file_bits, payload_bits, activity_bits, values_bits
  (the payload by part), header_bits, cross_entropy_bits, model_entropy_bits; beside them
  payload_over_cross_entropy, decoder_bits (whole decoder, float32, the two-part term),
  file_with_decoder_bits (file_bits + decoder_bits / n_test), decoded_exactly, and file (an SAE's
  .mdlc path when kept, else null; PCA's file is measured, not kept);
- ``stored``: what a user would store instead, whatever the tolerance (near-lossless, so not
  matched to it): float16 and int8 + zstd (``baselines``), each {name, file_bits, mse, fvu};
- ``skipped``: [{name, source, reason}]; ``versions``, ``machine``.
- with ``rdo`` (``mdlcodec measure --rdo``), each SAE row adds ``optimised``: the same test split coded
  by the shortest of per-feature steps and rate-distortion optimised encoding within the tolerance
  (``codec.rd_fit.fit_rd_codec``; same decoder and format), {file_bits, payload_bits,
  cross_entropy_bits, mse, fvu, l0, rdo_lambda, per_feature, file}, and ``best_file_bits``, the
  shorter of the two files, which then orders the rows (plain rows keep their own figures).
- with ``two_part`` (``mdlcodec measure --two-part``), each SAE row and PCA's add ``two_part``: the
  honest two-part code (``measure.measure_two_part``: decoder rows coded at the precision the
  tolerance allows, chosen with the latents' step for the shortest total on this test split, written
  as a self-contained file and read back) {levels, step, decoder_bits (the model section, once),
  file_bits (the rest, per sample), cross_entropy_bits, decoder_bits_float32, mse, fvu, total_bits,
  file (NAME.two_part.mdlc in the output folder when kept, else null)},
  and an SAE's ``break_even_samples_vs_pca``: from how many samples its two parts are no longer
  than PCA's (null: never). Optional fields: absent without it, so the schema stays version 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdlcodec.baselines import IntCompressed, StoredFloat, distortion
from mdlcodec.codec.precision import fit_codec
from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.progress import Progress, quiet
from mdlcodec.core.runinfo import machine, versions
from mdlcodec.codec.two_part import break_even
from mdlcodec.models.peers import as_sae
from mdlcodec.selection.measure import measure_codec, measure_optimised, measure_pca, measure_two_part

SCHEMA = "mdlcodec.measure/1"


def mean_variance(test: np.ndarray) -> float:
    """Mean over dimensions of the per-dimension variance of test [n, d] (float64, chunkwise): the
    MSE of predicting every sample by the mean, so FVU = MSE / test_variance."""
    n, d = test.shape
    s1, s2 = np.zeros(d), 0.0
    for s in range(0, n, 4096):
        part = np.asarray(test[s:s + 4096], dtype=np.float64)
        s1 += part.sum(0)
        s2 += float((part ** 2).sum())
    return (s2 - float((s1 ** 2).sum()) / n) / (n * d)


def tolerance(test: np.ndarray, max_mse: float | None = None, max_fvu: float | None = None) -> dict:
    """{max_mse, max_fvu, test_variance} from one of the two bounds (MdlcodecError if not exactly one)."""
    if (max_mse is None) == (max_fvu is None):
        raise MdlcodecError("give one tolerance: a maximum test MSE or a maximum FVU", param="tolerance")
    var = mean_variance(test)
    if max_fvu is not None:
        max_mse = max_fvu * var
    return {"max_mse": float(max_mse), "max_fvu": float(max_mse / var) if var > 0 else None, "test_variance": var}


def stored_rows(test: np.ndarray) -> list[dict]:
    """float16 and int8 + zstd on the test split: file bits per sample (every byte they write),
    MSE and FVU of what they decode to."""
    out = []
    for method in (StoredFloat("float16"), IntCompressed("zstd", 8)):
        data = method.encode(test)
        d = distortion(test, method.decode(data))
        out.append({"name": method.name, "file_bits": 8 * len(data) / len(test), "mse": d["mse"], "fvu": d["fvu"]})
    return out


def _two_part(codec, ds, max_mse: float, skipped: list, name: str, source: str, path: Path | None) -> dict | None:
    try:
        return measure_two_part(codec, ds.train, ds.test, max_mse, path)[1]
    except MdlcodecError as e:
        skipped.append({"name": f"{name} (two-part)", "source": source, "reason": str(e)})
        return None


def _break_even(rows: list[dict]) -> None:
    """Each SAE row's two-part break-even against PCA's: the test samples from which the SAE's file
    plus its coded decoder is no longer than PCA's (None: never; 0: always)."""
    pca = next((r["two_part"] for r in rows if r["method"] == "pca" and r.get("two_part")), None)
    for r in rows:
        if r["method"] == "sae" and r.get("two_part") and pca is not None:
            t = r["two_part"]
            t["break_even_samples_vs_pca"] = break_even(t["file_bits"], t["decoder_bits"], pca["file_bits"],
                                                        pca["decoder_bits"])


def _row(method: str, name: str, source: str, m: dict, n_test: int, **extra) -> dict:
    ce = m["cross_entropy_bits"]
    return {"method": method, "name": name, "source": source, **extra, "step": m["step"], "l0": m["quantised_l0"],
            "mse": m["quantised_test_mse"], "fvu": m["quantised_fvu"], "bits_per_value": m["bits_per_value"],
            "file_bits": m["file_bits"], "payload_bits": m["payload_bits"],
            "activity_bits": m["payload_activity_bits"], "values_bits": m["payload_values_bits"],
            "header_bits": m["header_bits"], "cross_entropy_bits": ce["total"],
            "model_entropy_bits": m["model_entropy_bits"],
            "payload_over_cross_entropy": m["payload_over_cross_entropy"], "decoder_bits": m["decoder_bits"],
            "file_with_decoder_bits": m["file_bits"] + m["decoder_bits"] / n_test, "decoded_exactly": True}


def measure_saes(saes: list[tuple[str, str, object]], ds, max_mse: float | None = None,
                 max_fvu: float | None = None, pca: bool = True, out_dir: str | Path | None = None,
                 device: str = "cpu", progress: Progress = quiet, keep_tables: bool = False,
                 stored: bool = True, rdo: bool = False, two_part: bool = False) -> dict:
    """Measure each (name, source, SAE) of ``saes`` and, with ``pca``, PCA transform coding on the
    Dataset ``ds`` at one tolerance (schema in this module's docstring). With ``out_dir`` (an
    existing folder) each SAE's test file is kept there as NAME.mdlc; with ``keep_tables`` the
    tables fitted here join the archive of the SAE's folder (``source``; Codec.save_tables with
    current=False), so that those files decode with the model folder; its current tables stay.
    With ``stored``, float16 and int8 + zstd beside them (``stored_rows``); with ``rdo``, each SAE's
    optimised encoding beside its plain one (the module's docstring)."""
    tol = tolerance(ds.test, max_mse, max_fvu)
    n_test = len(ds.test)
    rows, skipped = [], []

    def path(name: str) -> Path | None:
        return Path(out_dir) / f"{name}.mdlc" if out_dir is not None else None

    saes = [(name, source, as_sae(sae)) for name, source, sae in saes]  # objects in memory: models.peers.objects
    for name, source, sae in saes:  # every SAE fits the data before any work
        if sae.cfg.d_in != ds.d:
            raise MdlcodecError(f"SAE {name} ({source}) takes inputs of width {sae.cfg.d_in}, {ds.spec} has width {ds.d}")
    for name, source, sae in saes:
        progress(f"{name}: coarsest step for test MSE <= {tol['max_mse']:.6g}")
        try:
            codec, _ = fit_codec(sae, ds.train, ds.test, max_mse=tol["max_mse"], device=device, hierarchy="flat")
        except MdlcodecError as e:
            if getattr(e, "param", None) != "max_mse":
                raise
            skipped.append({"name": name, "source": source, "reason": str(e)})
            progress(f"{name}: skipped ({e})")
            continue
        progress(f"{name}: encode the test split, read it back")
        m = measure_codec(codec, ds.test, path(name))
        if keep_tables:
            codec.save_tables(source, current=False)
        cfg = sae.cfg
        rows.append(_row("sae", name, source, m, n_test, arch=cfg.arch, width=cfg.d_sae, k=cfg.k,
                         file=str(path(name)) if out_dir is not None else None))
        if rdo:
            progress(f"{name}: per-feature steps and RDO for test MSE <= {tol['max_mse']:.6g}")
            opt, rows[-1]["optimised"] = measure_optimised(sae, ds.train, ds.test, tol["max_mse"], device,
                                                           path(f"{name}.optimised"))
            if keep_tables:
                opt.save_tables(source, current=False)
            rows[-1]["best_file_bits"] = min(m["file_bits"], rows[-1]["optimised"]["file_bits"])
        if two_part:
            progress(f"{name}: decoder precision and step of the two-part code")
            rows[-1]["two_part"] = _two_part(codec, ds, tol["max_mse"], skipped, name, source, path(f"{name}.two_part"))
    if pca:
        progress("PCA: components and step for the tolerance")
        try:
            codec, m = measure_pca(ds.train, ds.test, tol["max_mse"])
        except MdlcodecError as e:
            skipped.append({"name": "pca", "source": "baselines.match_pca", "reason": str(e)})
        else:
            rows.append(_row("pca", f"pca m={m['components']}", "baselines.match_pca", m, n_test, arch="pca",
                             width=m["components"], k=None, file=None))
            if two_part:
                progress("PCA: decoder precision and step of the two-part code")
                rows[-1]["two_part"] = _two_part(codec, ds, tol["max_mse"], skipped, "pca", "baselines.match_pca",
                                                 path("pca.two_part"))
    if two_part:
        _break_even(rows)
    rows.sort(key=lambda r: r.get("best_file_bits", r["file_bits"]))
    return {"schema": SCHEMA,
            "data": {"spec": ds.spec, "name": ds.name, "n_train": int(len(ds.train)), "n_test": n_test, "d": ds.d},
            "tolerance": tol, "rows": rows, "stored": stored_rows(ds.test) if stored else [], "skipped": skipped, "versions": versions(), "machine": machine()}


def markdown_table(result: dict) -> str:
    """One table of the rows, shortest file first, then a line per skipped SAE."""
    t = result["tolerance"]
    lines = [f"Test split of {result['data']['name']}: {result['data']['n_test']:,} samples, d = {result['data']['d']}, "
             f"at test MSE <= {t['max_mse']:.6g} (FVU <= {t['max_fvu']:.4g}). Bits per sample.", "",
             "| method | width | k | L0 | FVU | file | payload | activity | values | header | cross-entropy "
             "| payload/cross-entropy | decoder bits | file + decoder |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    opt = any("optimised" in r for r in result["rows"])
    if opt:
        lines[2] = lines[2].replace("| file |", "| file | file (optimised) | payload (optimised) | FVU (optimised) |")
        lines[3] += "---:|---:|---:|"
    for r in result["rows"]:
        o = r.get("optimised")
        extra = (f" {o['file_bits']:.2f} | {o['payload_bits']:.2f} | {o['fvu']:.4f} |" if o else " - | - | - |") if opt else ""
        lines.append(f"| {r['name']} | {r['width']} | {r['k'] if r['k'] is not None else '-'} | {r['l0']:.1f} "
                     f"| {r['fvu']:.4f} | {r['file_bits']:.2f} |{extra} {r['payload_bits']:.2f} | {r['activity_bits']:.2f} "
                     f"| {r['values_bits']:.2f} | {r['header_bits']:.2f} | {r['cross_entropy_bits']:.2f} "
                     f"| {r['payload_over_cross_entropy']:.5f} | {r['decoder_bits']:,} "
                     f"| {r['file_with_decoder_bits']:,.1f} |")
    two = [r for r in result["rows"] if r.get("two_part")]
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
    if result.get("stored"):
        lines.append("\nStored instead (near-lossless, not matched to the tolerance): " + "; ".join(
            f"{s['name']} {s['file_bits']:,.0f} bits (FVU {s['fvu']:.1e})" for s in result["stored"]) + ".")
    for s in result["skipped"]:
        lines.append(f"\n{s['name']} cannot meet the tolerance: {s['reason']}.")
    return "\n".join(lines) + "\n"
