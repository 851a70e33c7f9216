"""`mdlcodec train`: train an SAE on a dataset, save it, print its test evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mdlcodec.cli.options import max_fvu_option, resolve_max_mse, shuffle_buffer_option, threads_option
from mdlcodec.models.train import TrainConfig

MDL_ARCHS = ("jumprelu", "batchtopk", "topk")  # architectures with a threshold or k

if TYPE_CHECKING:
    import numpy as np


@click.command("train")
@click.argument("data")
@click.option("--arch", default="batchtopk", show_default=True,
              help="Architecture: topk, batchtopk, relu, tree; jumprelu with --objective mdl.")
@click.option("--width", type=int, required=True, help="Number of latents (d_sae).")
@click.option("--k", type=int, help="Active latents per sample (topk) or on average (batchtopk).")
@click.option("--l1", "l1", type=float, help="L1 coefficient (relu).")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True,
              help="Most passes over the training data (early stopping may end sooner).")
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True,
              help="Adam learning rate (decays linearly to 0 over the last steps). Wide SAEs want less: SmolLM2's "
                   "residual stream at width 4,608, k 64, 3 epochs: 1e-3 left 2.4% of the latents dead, 4e-3 51%.")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=TrainConfig.lr_warmup_steps, show_default=True,
              help="Steps over which the learning rate rises linearly to --lr.")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True,
              help="Samples per step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@threads_option
@shuffle_buffer_option
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="Scale inputs so that their mean squared norm is d_in (undone by decode).")
@click.option("--codec-step", type=click.FloatRange(min=0, min_open=True),
              help="Quantiser step of the codec tables fitted after training (default: at most 1% added MSE).")
@click.option("--max-mse", type=click.FloatRange(min=0, min_open=True),
              help="Fit the codec with the coarsest step whose quantised test MSE is at most this.")
@max_fvu_option
@click.option("--parents", "parents_file", type=click.Path(path_type=Path),
              help="Tree: the forest, a JSON list of d_sae parent indices (-1 for roots) or {\"parents\": [...]}.")
@click.option("--grow-from", type=click.Path(path_type=Path),
              help="Tree: start from this flat (batchtopk/topk) model, its forest grown from its codes on DATA's "
                   "training split.")
@click.option("--min-implication", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="With --grow-from: a feature's parent fires on at least this share of the samples it fires on.")
@click.option("--objective", type=click.Choice(["mse", "mdl"]), default="mse", show_default=True,
              help="mdl: minimise MSE + beta * (estimated bits per sample), for jumprelu, batchtopk or topk; beta "
                   "is --beta, or steered so the training MSE meets --max-mse.")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True),
              help="--objective mdl: weight of a bit, in squared error of the normalised input summed over d_in.")
@click.option("--rate-step", type=click.FloatRange(min=0, min_open=True),
              help="--objective mdl: quantiser step of the rate estimate's noise, latent units (default: learned).")
@click.option("--start-from", type=click.Path(path_type=Path),
              help="Fine-tune this trained SAE of the same width (--arch jumprelu: a batchtopk model, its threshold "
                   "on every latent).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Model directory to write.")
@click.option("--force", is_flag=True, help="Replace the SAE already in OUTPUT.")
def train_cmd(data: str, arch: str, width: int, k: int | None, l1: float | None, epochs: int | None,
              lr: float | None, warmup_steps: int, batch_size: int | None, seed: int, device: str, shuffle_buffer: int, normalize: bool,
              codec_step: float | None, max_mse: float | None, max_fvu: float | None, parents_file: Path | None, grow_from: Path | None,
              min_implication: float, objective: str, beta: float | None, rate_step: float | None,
              start_from: Path | None, as_json: bool, output: Path, force: bool) -> None:
    """Train an SAE on DATA's training split (10% held out for early stopping), save it to OUTPUT and
    print its evaluation on DATA's test split, then fit the codec tables (quantiser and entropy model,
    OUTPUT/codec.safetensors) on the training split. DATA: toy[:...], mnist[:PATH], an activation file, or a
    shard folder (streamed shard by shard through a --shuffle-buffer, never loaded whole for training).
    A tree SAE (--arch tree) needs its forest: --parents FILE.json, or --grow-from a flat model (its
    weights and input scale are the start; --k defaults to its k). --objective mdl trains for description
    length (models.rate): with --max-mse the weight of the rate follows the tolerance."""
    from mdlcodec.core.errors import ModelError
    from mdlcodec.core.forest import forest_depths
    from mdlcodec.data import load_dataset
    from mdlcodec.models import SAEConfig, TrainConfig, evaluate, load_sae
    from mdlcodec.models.base import architecture
    from mdlcodec.models.jumprelu import jumprelu_from
    from mdlcodec.models.train import check_device
    from mdlcodec.models.tree import tree_from_flat
    from mdlcodec.workflow import check_model_output, train_codec

    cfg = SAEConfig(arch=arch, d_in=1, d_sae=width, k=k, l1_coeff=l1, objective="mdl" if objective == "mdl" else None)
    if max_mse is not None and max_fvu is not None:
        raise click.UsageError("give --max-mse or --max-fvu, not both")
    if codec_step is not None and (max_mse is not None or max_fvu is not None):
        raise click.UsageError("give --codec-step or a tolerance (--max-mse, --max-fvu), not both")
    if objective != "mdl" and (beta is not None or rate_step is not None):
        raise click.UsageError("--beta and --rate-step are for --objective mdl")
    if beta is not None and (max_mse is not None or max_fvu is not None):
        raise click.UsageError("give --beta or a tolerance (--max-mse, --max-fvu: it sets beta), not both")
    if objective == "mdl" and arch not in MDL_ARCHS:
        raise ModelError(f"--objective mdl needs an architecture with a threshold or k ({', '.join(MDL_ARCHS)}), "
                         f"not {arch}", param="objective")
    structure, flat = {}, None
    if arch != "tree" and (parents_file or grow_from):
        raise ModelError("--parents and --grow-from are for --arch tree")
    start = None
    if start_from is not None:
        if arch == "tree":
            raise ModelError("a tree SAE starts from a flat model with --grow-from, not --start-from")
        start = load_sae(start_from, device)
        if start.cfg.d_sae != width:
            raise ModelError(f"--width {width} differs from the width {start.cfg.d_sae} of {start_from}")
        if arch == "jumprelu" and start.cfg.arch == "batchtopk":
            start = jumprelu_from(start)
        if start.cfg.arch != arch:
            raise ModelError(f"--start-from {start_from} is a {start.cfg.arch} SAE, not {arch}")
        cfg.k = start.cfg.k if k is None else k
    if arch == "tree":
        if parents_file is None and grow_from is None:
            raise ModelError("a tree SAE needs its forest: give --parents FILE.json or --grow-from MODEL_DIR")
        if parents_file is not None and grow_from is not None:
            raise ModelError("give --parents or --grow-from, not both")
        if grow_from is not None:
            flat = load_sae(grow_from, device)
            if flat.cfg.d_sae != width:
                raise ModelError(f"--width {width} differs from the width {flat.cfg.d_sae} of {grow_from}")
            cfg.k = flat.cfg.k if k is None else k
    architecture(cfg).check_trainable(cfg)  # refuse a bad architecture or width before loading any data
    check_model_output(output, force)  # before loading data or training
    if parents_file is not None:
        structure["parents"] = _read_parents(parents_file, width)
    if objective == "mdl" and beta is None and max_mse is None and max_fvu is None:
        raise ModelError("--objective mdl needs --max-mse or --max-fvu (beta is then steered to meet it) or --beta: with neither, "
                         "its code came out longer than plain training's (MNIST 128 x 16: 96.5 against 83.8 bits/image)",
                         param="beta")
    check_device(device)
    ds = load_dataset(data)
    max_mse = resolve_max_mse(ds.test, max_mse, max_fvu)
    cfg.d_in = ds.d
    given = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "beta": beta, "rate_step": rate_step,
             "target_mse": max_mse if objective == "mdl" else None}
    tcfg = TrainConfig(seed=seed, device=device, normalize=normalize, progress=not as_json, objective=objective,
                       shuffle_buffer=shuffle_buffer, lr_warmup_steps=warmup_steps,
                       **{name: v for name, v in given.items() if v is not None})
    init = tree_from_flat(flat, ds.train, min_implication) if flat is not None else start
    tc = train_codec(cfg, ds.train, ds.test, tcfg, output, codec_step, max_mse, overwrite=force, init=init,
                     **structure)
    sae, result, codec_report = tc.sae, tc.training, tc.codec_report
    ev = evaluate(sae, ds.test)
    report = {"data": ds.name, "model": str(output), "config": sae.cfg.to_dict(), "test": ev,
              "epochs_run": len(result.history), "best_epoch": result.best_epoch,
              "stopped_early": result.stopped_early, "seconds": result.seconds, "codec": codec_report}
    if arch == "tree":
        parents = sae.parents.cpu().numpy()
        report["forest"] = {"children": int((parents >= 0).sum()),
                            "depth": int(forest_depths(parents).max(initial=0))}
    if as_json:
        click.echo(json.dumps(report))
        return
    c = sae.cfg
    click.echo(f"{c.arch} SAE, width {c.d_sae}, d_in {c.d_in}" + (f", k {c.k}" if c.k is not None else "")
               + (f", l1 {c.l1_coeff:g}" if c.l1_coeff is not None else "") + f" on {ds.name}")
    if "forest" in report:
        f = report["forest"]
        click.echo(f"forest: {f['children']} children of {c.d_sae} features, depth {f['depth']}")
    stop = ", stopped early" if result.stopped_early else ""
    click.echo(f"trained {len(result.history)} epochs (best {result.best_epoch}{stop}) in {result.seconds:.1f} s; "
               f"saved to {output}")
    click.echo(f"test: MSE {ev['mse']:.6g}  FVU {ev['fvu']:.4f}  L0 {ev['l0_mean']:.2f} +- {ev['l0_std']:.2f}  "
               f"alive {ev['alive']}/{c.d_sae} (dead {100 * ev['dead_fraction']:.1f}%)")
    b = codec_report["cross_entropy_bits_per_sample"]
    click.echo(f"codec: step {codec_report['step']:.4g}, quantised test MSE {codec_report['quantised_test_mse']:.6g}, "
               f"cross-entropy {b['total']:.1f} bits/sample (activity {b['activity']:.1f} + values {b['values']:.1f})")


def _read_parents(path: Path, width: int) -> np.ndarray:
    """The forest [width] int64 in a JSON file: a list of parent indices (-1 for roots), or an object
    whose key "parents" holds one; ModelError (one line) if unreadable or not a forest of width features."""
    import numpy as np

    from mdlcodec.core.errors import ModelError
    from mdlcodec.core.forest import check_forest
    from mdlcodec.core.jsonio import read_json

    raw = read_json(path, f"the forest {path}", ModelError)
    if isinstance(raw, dict):
        raw = raw.get("parents")
    if not isinstance(raw, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise ModelError(f"{path} must hold a JSON list of integers (or {{\"parents\": [...]}})")
    try:
        return check_forest(np.array(raw, dtype=np.int64), width)
    except (ModelError, OverflowError) as e:
        raise ModelError(f"{path}: {e}") from None
