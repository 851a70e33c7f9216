"""`mdlcodec measure`: bits per sample (per token) of given SAEs at one or several tolerances (a
rate-distortion curve), beside PCA."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mdlcodec.cli.options import threads_option
from mdlcodec.measurement.tokens import DEFAULT_NORM_QUANTILE


def _list(value: str | None) -> list[str] | None:
    """A comma-separated tolerance list as given (checked by selection.compare.tolerances), None if not given."""
    return None if value is None else [v.strip() for v in value.split(",")]


@click.command("measure")
@click.argument("paths", nargs=-1, required=True)
@click.option("--max-fvu", metavar="F[,F...]",
              help="Tolerance: the largest fraction of the test split's variance left unexplained, in (0, 1]; "
                   "several, comma-separated, give a curve (the SAEs' latents are computed once).")
@click.option("--max-mse", metavar="M[,M...]",
              help="Tolerance: the largest test MSE (mean over samples and dimensions); several, comma-separated, "
                   "give a curve.")
@click.option("--no-pca", is_flag=True, help="Skip the dense baseline (PCA transform coding).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep each SAE's test .mdlc file (its tables join the SAE folder's tables/, so it decodes "
                   "with -m SAE), results.json and results.md here.")
@click.option("--force", is_flag=True, help="Replace results already in OUT_DIR.")
@click.option("--rdo", is_flag=True, help="Also code each SAE with per-feature steps and rate-distortion optimised "
              "encoding (same decoder and format) and show it beside the plain code; rows ordered by the shorter.")
@click.option("--chow-liu", is_flag=True, help="Also code each SAE's quantised latents with a Chow-Liu forest over its "
              "features (tables from the training split) and show that file beside the plain one.")
@click.option("--two-part", is_flag=True, help="Also the honest two-part code: decoder rows coded at the precision the "
              "tolerance allows (with the latents' step), the self-contained file read back, and each SAE's "
              "break-even number of samples against PCA coded the same way.")
@click.option("--norm-quantile", type=float, default=DEFAULT_NORM_QUANTILE, show_default=True,
              help="FVU is also given over the test samples whose norm is at most this quantile of the test "
                   "norms (a transformer's few massive activations left out); 1 keeps all.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rate-distortion plot (file bits per sample against FVU, one line per SAE and PCA) "
                   "here as PNG; with -o and several tolerances it is also OUT_DIR/rd.png.")
@click.option("--device", default="cpu", show_default=True)
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema mdlcodec.measure/2).")
def measure_cmd(paths: tuple[str, ...], max_fvu: str | None, max_mse: str | None, no_pca: bool,
                out_dir: Path | None, force: bool, rdo: bool, chow_liu: bool, two_part: bool, norm_quantile: float,
                plot_path: Path | None, device: str, as_json: bool) -> None:
    """Measure SAE... on DATA (the last argument): for each SAE folder (trained by mdlcodec or
    imported with `mdlcodec import`), the coarsest quantisation whose test reconstruction meets the
    tolerance, the test split coded into a real .mdlc file and read back: file, payload (activity,
    values), header, cross-entropy, model entropy and decoder bits per sample, FVU (also below a
    norm quantile) and L0; PCA transform coding at the same tolerance beside them; one table per
    tolerance, shortest file first, and with several tolerances the rate-distortion plot."""
    from mdlcodec.core.atomic import write_text
    from mdlcodec.core.errors import MdlcodecError
    from mdlcodec.core.lock import folder_lock
    from mdlcodec.data import load_dataset
    from mdlcodec.measurement.compare import markdown_table, measure_saes, tolerances
    from mdlcodec.measurement.plots import plot_rate_distortion
    from mdlcodec.models import load_sae
    from mdlcodec.models.train import check_device

    if len(paths) < 2:
        raise click.UsageError("give one or more SAE folders, then DATA")
    if (max_fvu is None) == (max_mse is None):
        raise MdlcodecError("one tolerance is needed, on FVU or on MSE", param="tolerance")
    *models, data = paths
    bounds = {"max_fvu": _list(max_fvu), "max_mse": _list(max_mse)}
    tolerances(1.0, bounds["max_mse"], bounds["max_fvu"])  # each value checked before any work or folder
    several = len(bounds["max_fvu"] or bounds["max_mse"]) > 1
    outputs = [p for p in (out_dir / "results.json" if out_dir is not None else None, plot_path) if p is not None]

    def refuse_existing() -> None:
        for p in outputs:
            if p.exists() and not force:
                raise MdlcodecError(f"{p} exists", param="overwrite")
    refuse_existing()
    check_device(device)
    saes, names = [], set()
    for m in models:  # every SAE loads before the data and the work
        name = Path(m).name or str(m)
        while name in names:
            name += "'"
        names.add(name)
        saes.append((name, str(m), load_sae(m)))
    ds = load_dataset(data)
    if out_dir is not None:  # a second run into OUT_DIR is one line, not one run's results lost; held to the end
        out_dir.mkdir(parents=True, exist_ok=True)
        click.get_current_context().with_resource(folder_lock(out_dir, "measure"))
        refuse_existing()  # again, now that no other run can write there
    say = (lambda m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    result = measure_saes(saes, ds, bounds["max_mse"], bounds["max_fvu"], pca=not no_pca, out_dir=out_dir,
                          device=device, progress=say, keep_tables=out_dir is not None, rdo=rdo, two_part=two_part,
                          norm_quantile=norm_quantile, chow_liu=chow_liu)
    if not result["rows"]:
        raise MdlcodecError("nothing meets " + ", ".join(f"test MSE <= {t['max_mse']:.6g} (FVU <= {t['max_fvu']:.4g})"
                                                         for t in result["tolerances"]), param="tolerance_unmet")
    result["command"] = {"models": list(models), "data": data, **bounds, "pca": not no_pca, "rdo": rdo,
                         "chow_liu": chow_liu, "two_part": two_part, "norm_quantile": norm_quantile}
    table = markdown_table(result)
    if out_dir is not None:
        write_text(out_dir / "results.json", json.dumps(result, indent=1) + "\n")
        write_text(out_dir / "results.md", table)
    for p in [plot_path] + ([out_dir / "rd.png"] if out_dir is not None and several else []):
        if p is not None:
            plot_rate_distortion(result, p)
            say(f"plot: {p}")
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(table, nl=False)
