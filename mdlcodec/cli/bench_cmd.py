"""`mdlcodec bench` (bits per sample against the baselines), `mdlcodec splitting` (the paper's
Figure 3 with the real codec) and `mdlcodec hierarchy-figure` (its Figure 5 with the real codec)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mdlcodec.cli.options import max_fvu_option, resolve_max_mse, threads_option
from mdlcodec.core.errors import MdlcodecError

_out_dir = click.Path(file_okay=False, path_type=Path)


def _check_out(out_dir: Path, name: str, force: bool) -> None:
    if (out_dir / name).exists() and not force:
        raise MdlcodecError(f"{out_dir / name} exists; choose another output folder (or pass --force)")
    if out_dir.exists() and not out_dir.is_dir():
        raise MdlcodecError(f"{out_dir} exists and is not a folder")


def _check_sae_dir(sae_dir: Path, force: bool) -> None:
    """Refuse, before any training, a folder for the trained SAE that would not take it."""
    if sae_dir.exists() and not sae_dir.is_dir():
        raise MdlcodecError(f"{sae_dir} exists and is not a folder: choose another --save-sae")
    if sae_dir.is_dir() and any(sae_dir.iterdir()) and not force:
        raise MdlcodecError(f"{sae_dir} is not empty; choose another --save-sae "
                            "(or pass --force to replace the SAE there)")


@click.command("bench")
@click.argument("data")
@click.option("-m", "--model", "models", multiple=True, type=click.Path(path_type=Path),
              help="SAE directory (repeatable). Without one the bench trains a BatchTopK SAE.")
@click.option("-o", "--out-dir", type=_out_dir, required=True, help="Folder for results.json, results.md, rd.png.")
@click.option("--max-mse", type=click.FloatRange(min=0, min_open=True),
              help="Test MSE at which lossy methods are compared (default: 0.015 on MNIST, else 1% above the SAEs' own).")
@max_fvu_option
@click.option("--no-train", is_flag=True, help="Do not train an SAE when none is given (baselines only; needs --max-mse).")
@click.option("--width", type=click.IntRange(min=1), help="Width of the SAE the bench trains (default: true features on toy data, else 256).")
@click.option("--k", type=click.IntRange(min=1), help="k of the SAE the bench trains (default: true L0 on toy data, else 24).")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True, help="Most epochs for the SAE the bench trains.")
@click.option("--save-sae", "save_sae_dir", type=_out_dir,
              help="Folder for the SAE the bench trains, saved as soon as it is trained (default: OUT_DIR/sae).")
@click.option("--no-rd", is_flag=True, help="Skip the rate-distortion sweeps (and rd.png).")
@click.option("--rdo", is_flag=True,
              help="Also code each SAE with per-feature steps and rate-distortion optimised encoding (rows '+rdo' and "
                   "'+rdo chow-liu' beside the plain ones; minutes per SAE on 2 CPU cores); the shorter valid file "
                   "faces PCA.")
@threads_option
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Seed of the SAE the bench trains.")
@click.option("--force", is_flag=True, help="Replace results (and a trained SAE) already in OUT_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def bench_cmd(data: str, models: tuple[Path, ...], out_dir: Path, max_mse: float | None, max_fvu: float | None,
              no_train: bool,
              width: int | None, k: int | None, epochs: int, save_sae_dir: Path | None, no_rd: bool, rdo: bool, device: str,
              seed: int, force: bool, as_json: bool) -> None:
    """Bits per sample of DATA's test split for every method (float32/16, int8 + gzip/xz/zstd, PCA
    transform coding, the SAE codec with and without its decoder), lossy ones at one test MSE.

    Everything that can be checked is checked before training; the trained SAE is saved before it is
    measured. A lossy method that cannot meet the target MSE (an SAE whose own test MSE is above it)
    is recorded as skipped, with a warning, and the results of every other method are written."""
    from mdlcodec.benchmark import (
        SAEEntry,
        bench_sae_config,
        default_max_mse,
        run_benchmark,
        train_bench_sae,
        write_results,
    )
    from mdlcodec.data import load_dataset
    from mdlcodec.experiments.boolean_features import make_out_dir
    from mdlcodec.models import load_sae
    from mdlcodec.models.base import architecture
    from mdlcodec.models.train import check_device

    # Before the work (training may take an hour): options, output folders, device, models, data.
    train = not models and not no_train
    if not train:
        for flag, given in (("--save-sae", save_sae_dir), ("--width", width), ("--k", k)):
            if given is not None:
                raise click.UsageError(f"{flag} is for the SAE the bench trains, and with "
                                       f"{'-m' if models else '--no-train'} it trains none")
    _check_out(out_dir, "results.json", force)
    sae_dir = (save_sae_dir or out_dir / "sae") if train else None
    if sae_dir is not None:
        _check_sae_dir(sae_dir, force)
    check_device(device)
    say = (lambda m: None) if as_json else (lambda m: click.echo(m, err=True))
    saes = [SAEEntry(p.name or str(p), load_sae(p, "cpu"), str(p)) for p in models]
    ds = load_dataset(data)
    max_mse = resolve_max_mse(ds.test, max_mse, max_fvu)
    for e in saes:
        if e.sae.cfg.d_in != ds.d:
            raise MdlcodecError(f"SAE {e.source} takes d_in={e.sae.cfg.d_in}, the data {data} has d={ds.d}")
    cfg = bench_sae_config(ds, width, k) if train else None
    if cfg is not None:
        architecture(cfg)  # a width or k the SAE cannot have fails now, not after training
    if max_mse is None and not train:
        max_mse = default_max_mse(ds, saes)  # without an SAE to train, a missing target fails now
    make_out_dir(out_dir)
    training = []
    if train:
        say(f"training {cfg.arch} width {cfg.d_sae} k {cfg.k} on {ds.name} (at most {epochs} epochs)...")
        # saved before measuring: kept whatever the measurement finds
        sae, info = train_bench_sae(ds, cfg, epochs, device, seed, not as_json, sae_dir, overwrite=True)
        saes.append(SAEEntry(f"batchtopk w{cfg.d_sae} k{cfg.k}", sae, str(sae_dir)))
        training.append({"label": saes[-1].label, **info, "saved": str(sae_dir)})
        say(f"  trained in {info['seconds']:.0f} s ({info['epochs']} epochs), saved in {sae_dir}")
    if max_mse is None:
        max_mse = default_max_mse(ds, saes)
    results = run_benchmark(ds.train, ds.test, max_mse, saes, rd=not no_rd, device=device, rdo=rdo,
                            progress=lambda m: say(f"  {m}"))
    options = {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, tuple) else v)
               for k, v in click.get_current_context().params.items()}
    results = {"bench_options": options, "dataset": ds.name, "spec": data,
               "sae_training": training, **results}
    paths = write_results(results, out_dir)
    for s in results["skipped"]:
        click.echo(f"warning: {s['method']} skipped: {s['reason']} (give a larger --max-mse or a better SAE); "
                   f"the other methods' results are written", err=True)
    if not results["methods"]:
        raise MdlcodecError(f"no method could be measured at test MSE {max_mse:g}")
    if as_json:
        click.echo(json.dumps(results))
        return
    _print_figure(paths, as_json)


def _print_figure(paths: dict, as_json: bool) -> None:
    """A figure command's output: its JSON results and the files written, or its markdown table."""
    import json

    from mdlcodec.core.jsonio import read_json_object

    if as_json:
        results = read_json_object(Path(paths["json"]))
        click.echo(json.dumps({**results, "written": {k: str(p) for k, p in paths.items()}}))
        return
    click.echo(Path(paths["markdown"]).read_text(), nl=False)
    click.echo("written: " + ", ".join(str(p) for p in paths.values()))


@click.command("splitting")
@click.option("-o", "--out-dir", type=_out_dir, required=True,
              help="Folder for splitting.json, splitting.md, splitting.png.")
@click.option("--n", "n", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Samples per (p, rho) cell of the phase diagram (train and test each).")
@click.option("--grid", type=click.IntRange(min=3), default=25, show_default=True, help="Grid points per axis.")
@click.option("--points-n", type=click.IntRange(min=100), default=100_000, show_default=True,
              help="Samples for the table of single (p, rho) points.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace results already in OUT_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the grid, the points and the files written.")
def splitting_cmd(out_dir: Path, n: int, grid: int, points_n: int, seed: int, force: bool, as_json: bool) -> None:
    """The paper's Figure 3: booleans A, B coded with the real codec under the unsplit {A, B} and the
    split {A&~B, B&~A, A&B} dictionaries; measured bits against the formulas and the phase diagram."""
    import numpy as np

    from mdlcodec.experiments.boolean_features import make_out_dir
    from mdlcodec.experiments.splitting import (
        TABLE_POINTS,
        phase_diagram,
        splitting_point,
        write_splitting,
    )

    _check_out(out_dir, "splitting.json", force)
    make_out_dir(out_dir)  # before the work: a folder that cannot be made fails now
    ps = np.linspace(0.02, 0.98, grid)
    rhos = np.linspace(0.0, 0.98, grid)
    click.echo(f"coding {grid} x {grid} (p, rho) cells, {n:,} samples each...", err=True)
    diagram = phase_diagram(ps, rhos, n, seed)
    points = [splitting_point(p, r, points_n, seed) for p, r in TABLE_POINTS]
    paths = write_splitting(diagram, points, out_dir)
    _print_figure(paths, as_json)


@click.command("hierarchy-figure")
@click.option("-o", "--out-dir", type=_out_dir, required=True,
              help="Folder for hierarchy_figure.json, hierarchy_figure.md, hierarchy_figure.png.")
@click.option("--n", "n", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Samples per (p_A, p_B|A) cell of the phase diagram (train and test each).")
@click.option("--grid", type=click.IntRange(min=3), default=20, show_default=True, help="Grid points per axis.")
@click.option("--points-n", type=click.IntRange(min=100), default=100_000, show_default=True,
              help="Samples for the table of single (p_A, p_B|A) points.")
@click.option("--seed", default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace results already in OUT_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the grid, the points and the files written.")
def hierarchy_figure_cmd(out_dir: Path, n: int, grid: int, points_n: int, seed: int, force: bool, as_json: bool) -> None:
    """The paper's Figure 5: "Animal" A and "Bird" B (B implies A) coded with the real codec under the
    flat {A&~B, B} and the tree {A, B|A} dictionaries; measured bits against the formulas, and the
    tree's saving over (p_A, p_B|A)."""
    import numpy as np

    from mdlcodec.experiments.boolean_features import make_out_dir
    from mdlcodec.experiments.hierarchy_figure import (
        TABLE_POINTS,
        hierarchy_point,
        phase_diagram,
        write_hierarchy_figure,
    )

    _check_out(out_dir, "hierarchy_figure.json", force)
    make_out_dir(out_dir)  # before the work: a folder that cannot be made fails now
    axis = np.linspace(0.02, 0.98, grid)
    click.echo(f"coding {grid} x {grid} (p_A, p_B|A) cells, {n:,} samples each...", err=True)
    diagram = phase_diagram(axis, axis, n, seed)
    points = [hierarchy_point(pa, q, points_n, seed) for pa, q in TABLE_POINTS]
    paths = write_hierarchy_figure(diagram, points, out_dir)
    _print_figure(paths, as_json)
