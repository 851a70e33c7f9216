"""`mdlcodec demo`: the main job on the embedded synthetic default."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from mdlcodec.cli.options import threads_option


@click.command("demo")
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to keep the model and files, with the rate-distortion plot rd.png (the SAE beside PCA "
                   "at several tolerances; default: a temporary folder, no plot).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--seed", default=0, show_default=True)
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def demo_cmd(out_dir: Path | None, device: str, seed: int, as_json: bool) -> None:
    """Train an SAE on synthetic superposition data, then encode and decode its test split for real."""
    from mdlcodec.experiments.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        r = run_demo(out_dir or tmp, device, seed, progress=not as_json, curve=out_dir is not None)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"data: {r['data']}")
    click.echo(f"SAE: {r['sae']['arch']} width {r['sae']['width']} k {r['sae']['k']}; test MSE {r['test_mse']:.5f}, "
               f"FVU {r['test_fvu']:.4f}, L0 {r['l0']:.2f}, alive {r['alive']}/{r['sae']['width']}")
    click.echo(f"ground truth: {100 * r['recovered_fraction']:.1f}% of {r['true_features']} true features "
               f"recovered (decoder cosine >= 0.9)")
    where = (f"{r['file']} holds" if out_dir is not None
             else "a temporary file (removed on exit; -o DIR keeps the model and the file) held")
    click.echo(f"codec: step {r['step']:.4g}; {where} the test split in {r['file_bytes']} bytes")
    b = r["bits_per_sample"]
    click.echo(f"  file (every byte)        {b['file']:8.2f} bits/sample")
    click.echo(f"  payload (coded chunks)   {b['payload']:8.2f} bits/sample "
               f"(activity {b['activity']:.2f} + values {b['values']:.2f})")
    click.echo(f"  cross-entropy            {b['cross_entropy']:8.2f} bits/sample (ideal length under the tables)")
    click.echo(f"  model entropy            {b['model_entropy']:8.2f} bits/sample (the tables' expected bits)")
    click.echo(f"  true activity entropy    {r['true_activity_entropy_bits_per_sample']:8.2f} bits/sample "
               f"(which of the true features fire, activity only; the payload's activity {b['activity']:.2f} "
               f"codes the SAE's own latents)")
    click.echo(f"  decoded: MSE {r['quantised_mse']:.5f}, FVU {r['quantised_fvu']:.4f}; "
               f"latents {'exact' if r['decoded_exactly'] else 'NOT EXACT'}")
    if "curve" in r:
        by = {}
        for c in r["curve"]:
            by.setdefault(c["max_fvu"], {})[c["method"]] = c["file_bits"]
        click.echo(f"rate-distortion ({r['plot']}): file bits/sample at FVU <= " + "; ".join(
            f"{f:g}: SAE {m.get('sae', float('nan')):.2f}, PCA {m.get('pca', float('nan')):.2f}" for f, m in by.items()))
