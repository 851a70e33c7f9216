"""`mdlcodec measure`: bits per sample (per token) of given SAEs at one tolerance, beside PCA."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mdlcodec.cli.options import threads_option


@click.command("measure")
@click.argument("paths", nargs=-1, required=True)
@click.option("--max-fvu", type=click.FloatRange(min=0, min_open=True),
              help="Tolerance: the largest fraction of the test split's variance left unexplained.")
@click.option("--max-mse", type=click.FloatRange(min=0, min_open=True),
              help="Tolerance: the largest test MSE (mean over samples and dimensions).")
@click.option("--no-pca", is_flag=True, help="Skip the dense baseline (PCA transform coding).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep each SAE's test .mdlc file (its tables join the SAE folder's tables/, so it decodes "
                   "with -m SAE), results.json and results.md here.")
@click.option("--force", is_flag=True, help="Replace results already in OUT_DIR.")
@click.option("--rdo", is_flag=True, help="Also code each SAE with per-feature steps and rate-distortion optimised "
              "encoding (same decoder and format) and show it beside the plain code; rows ordered by the shorter.")
@click.option("--two-part", is_flag=True, help="Also the honest two-part code: decoder rows coded at the precision the "
              "tolerance allows (with the latents' step), the self-contained file read back, and each SAE's "
              "break-even number of samples against PCA coded the same way.")
@click.option("--device", default="cpu", show_default=True)
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (schema mdlcodec.measure/1).")
def measure_cmd(paths: tuple[str, ...], max_fvu: float | None, max_mse: float | None, no_pca: bool,
                out_dir: Path | None, force: bool, rdo: bool, two_part: bool, device: str, as_json: bool) -> None:
    """Measure SAE... on DATA (the last argument): for each SAE folder (trained by mdlcodec or
    imported with `mdlcodec import`), the coarsest quantisation whose test reconstruction meets the
    tolerance, the test split coded into a real .mdlc file and read back: file, payload (activity,
    values), header, cross-entropy, model entropy and decoder bits per sample, FVU and L0; PCA
    transform coding at the same tolerance beside them; one table, shortest file first."""
    from mdlcodec.core.atomic import write_text
    from mdlcodec.core.errors import MdlcodecError
    from mdlcodec.data import load_dataset
    from mdlcodec.models import load_sae
    from mdlcodec.models.train import check_device
    from mdlcodec.selection.compare import markdown_table, measure_saes

    if len(paths) < 2:
        raise click.UsageError("give one or more SAE folders, then DATA")
    if (max_fvu is None) == (max_mse is None):
        raise MdlcodecError("one tolerance is needed, on FVU or on MSE", param="tolerance")
    *models, data = paths
    if out_dir is not None and (out_dir / "results.json").exists() and not force:
        raise MdlcodecError(f"{out_dir / 'results.json'} exists", param="overwrite")
    check_device(device)
    saes, names = [], set()
    for m in models:  # every SAE loads before the data and the work
        name = Path(m).name or str(m)
        while name in names:
            name += "'"
        names.add(name)
        saes.append((name, str(m), load_sae(m)))
    ds = load_dataset(data)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
    result = measure_saes(saes, ds, max_mse, max_fvu, pca=not no_pca, out_dir=out_dir, device=device, progress=say,
                          keep_tables=out_dir is not None, rdo=rdo, two_part=two_part)
    if not result["rows"]:
        raise MdlcodecError(f"nothing meets test MSE <= {result['tolerance']['max_mse']:.6g} "
                            f"(FVU <= {result['tolerance']['max_fvu']:.4g})", param="tolerance_unmet")
    result["command"] = {"models": list(models), "data": data, "max_fvu": max_fvu, "max_mse": max_mse,
                         "pca": not no_pca, "rdo": rdo, "two_part": two_part}
    table = markdown_table(result)
    if out_dir is not None:
        write_text(out_dir / "results.json", json.dumps(result, indent=1) + "\n")
        write_text(out_dir / "results.md", table)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(table, nl=False)
