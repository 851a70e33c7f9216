"""`mdlcodec select`: the MDL-SAE selection (the paper's Appendix C) over a grid of widths."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import click

from mdlcodec.cli.options import max_fvu_option, resolve_max_mse, shuffle_buffer_option, threads_option
from mdlcodec.core.errors import MdlcodecError


def parse_widths(text: str) -> tuple[int, ...]:
    """'32,64,128' -> (32, 64, 128); one-line MdlcodecError naming the bad item otherwise."""
    items = [s.strip() for s in text.split(",")]
    out = []
    for s in items:
        if not s.isdigit() or int(s) < 1:
            raise MdlcodecError(f"--widths {text!r}: {s!r} is not a positive integer "
                                "(give a comma-separated list such as 32,64,128)")
        out.append(int(s))
    if len(set(out)) != len(out):
        raise MdlcodecError(f"--widths {text!r}: a width is repeated")
    return tuple(out)


def parse_tol(text: str) -> float:
    try:
        tol = float(text)
    except ValueError:
        raise MdlcodecError(f"--max-mse {text!r} is not a number (a test MSE such as 0.015)") from None
    if not (math.isfinite(tol) and tol > 0):
        raise MdlcodecError(f"--max-mse {text!r}: the tolerance must be a positive, finite test MSE")
    return tol


def _command_line(ctx: click.Context) -> str:
    """The command as given (parsed arguments, defaults left out), recorded in results.json."""
    parts = ["mdlcodec", "select", ctx.params["data"]]
    for p in ctx.command.params:
        if p.name == "data" or ctx.get_parameter_source(p.name) is not click.core.ParameterSource.COMMANDLINE:
            continue
        v = ctx.params[p.name]
        flag = p.opts[-1] if p.name != "out_dir" else "-o"
        parts += [flag] if isinstance(v, bool) else [flag, str(v)]
    return " ".join(shlex.quote(x) for x in parts)


@click.command("select")
@click.argument("data")
@click.option("--max-mse", "--tol", "tol",
              help="Tolerance on test MSE (mean over samples and dimensions; default 0.015, the paper's for MNIST). "
                   "--tol is the same option's older name.")
@max_fvu_option
@click.option("--widths", help="Comma-separated dictionary sizes (default: 32..4096 doubling; --quick: 32..1024).")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder: results.json/csv/md, figures, and cache/ of trained SAEs (reused on a re-run).")
@click.option("--quick", is_flag=True, help="Quick setting: at most 30 epochs per SAE (patience 5), k to within 10%, widths 32..1024.")
@click.option("--epochs", type=click.IntRange(min=1), help="Most epochs per SAE (default 60; --quick 30).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Samples per training step (default 256).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Adam learning rate of every SAE (default 4e-3, tuned on MNIST; wide SAEs on a transformer's "
                   "activations want less: see `mdlcodec train --help`).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
@shuffle_buffer_option
@click.option("--no-pca", is_flag=True, help="Skip the dense PCA baseline row.")
@click.option("--objectives", default="mse", show_default=True,
              help="mse (the BatchTopK sweep) or mse,mdl: also, per width, its calibrated SAE fine-tuned as JumpReLU "
                   "for description length (train --objective mdl), a candidate beside it.")
@click.option("--rdo", is_flag=True,
              help="Also code each width's shortest-file SAE with per-feature steps and rate-distortion optimised "
                   "encoding (same decoder and format; minutes per width on 2 CPU cores): plain and optimised files "
                   "side by side, the shorter within the tolerance selects.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def select_cmd(data: str, tol: str | None, max_fvu: float | None, widths: str | None, out_dir: Path, quick: bool, epochs: int | None,
               batch_size: int | None, lr: float | None, device: str, shuffle_buffer: int,
               seed: int, no_pca: bool, objectives: str, rdo: bool, as_json: bool) -> None:
    """Find the eps-MDL-optimal BatchTopK SAE on DATA: per width the smallest k meeting the test MSE
    tolerance, the coarsest quantisation still meeting it, description length of the test split
    in theory and from the real encoded file, the shortest selected; PCA beside it; Figure 2."""
    from mdlcodec.data import load_dataset
    from mdlcodec.models.train import check_device
    from mdlcodec.selection import SelectionConfig, run_selection, write_results
    from mdlcodec.selection.results import markdown_table

    if tol is not None and max_fvu is not None:
        raise click.UsageError("give --max-mse or --max-fvu, not both")
    ds = load_dataset(data) if max_fvu is not None else None  # the test variance turns FVU into MSE
    max_mse = resolve_max_mse(ds.test, None, max_fvu) if ds is not None else parse_tol(tol or "0.015")
    overrides = {"tol": max_mse, "seed": seed, "device": device, "pca": not no_pca,
                 "shuffle_buffer": shuffle_buffer, "rdo": rdo,
                 "objectives": tuple(o.strip() for o in objectives.split(",") if o.strip())}
    if widths is not None:
        overrides["widths"] = parse_widths(widths)
    if epochs is not None:
        overrides["epochs"] = epochs
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    if lr is not None:
        overrides["lr"] = lr
    cfg = SelectionConfig.quick(**overrides) if quick else SelectionConfig(**overrides)
    cfg.check()
    check_device(device)
    if out_dir.exists() and not out_dir.is_dir():
        raise MdlcodecError(f"{out_dir} exists and is not a folder")
    say = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    ds = ds if ds is not None else load_dataset(data)
    command = _command_line(click.get_current_context())
    results, extra = run_selection(ds, cfg, out_dir, say, command)
    paths = write_results(results, extra, out_dir, ds.image_shape)
    if as_json:
        click.echo(json.dumps(results))
        return
    click.echo(markdown_table(results), nl=False)
    s, t = results["selected"], results["timing"]
    where = ("the curve has an interior minimum" if results["curve"]["interior_minimum"]
             else "the curve's minimum is at an edge of the grid")
    o = results.get("objectives")
    if o and "mdl" in o:
        click.echo(f"objective {o['winner']} wins: shortest file {o['mdl']['file_bits']:.1f} bits/sample trained for "
                   f"description length (width {o['mdl']['width']}) against {o['mse']['file_bits']:.1f} for BatchTopK "
                   f"(width {o['mse']['width']}, k {o['mse']['k']})")
    made = f"k {s['k']}" if s["k"] is not None else f"{s['arch']}, objective {s['objective']}"
    click.echo(f"MDL choice: width {s['width']}, {made} (L0 {s['l0']:.1f}): file {s['file_bits']:.1f} bits/sample"
               + (f" ({s['encoding']} encoding; plain {s['plain_file_bits']:.1f}, optimised {s['optimised_file_bits']:.1f})"
                  if "encoding" in s else "") + ", "
               f"cross-entropy {s['cross_entropy_bits']:.1f}; {where}"
               + ("" if s["beats_pca"] else "; PCA's dense code is shorter"))
    click.echo(f"payload within {100 * results['checks']['max_payload_vs_cross_entropy_deviation']:.3f}% of the "
               f"cross-entropy; "
               f"{t['sae_trained']} SAEs trained, {t['sae_reused']} from the cache, {t['seconds']:.0f} s; "
               f"wrote {', '.join(str(p) for p in paths.values())}")
