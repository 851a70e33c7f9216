"""`mdlcodec data DATA`: describe a dataset named by a spec string."""

from __future__ import annotations

import json

import click


@click.command("data")
@click.argument("data")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def data_cmd(data: str, as_json: bool) -> None:
    """Describe DATA: a file (.npy, .npz, .safetensors, .pt, optionally PATH:KEY), a shard folder (mdlcodec
    harvest), mnist[:PATH] or toy[:key=value,...]."""
    from mdlcodec.data import describe, load_dataset

    info = describe(load_dataset(data))
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(info["name"])
    click.echo(f"samples: {info['n_train']} train / {info['n_test']} test; d = {info['d']}; dtype {info['dtype']}"
               + (f"; images {info['image_shape'][0]}x{info['image_shape'][1]}" if info["image_shape"] else ""))
    click.echo(f"{'':<8}{'min':>12}{'max':>12}{'mean |x|^2':>14}{'total var':>14}")
    for split in ("train", "test"):
        s = info[split]
        click.echo(f"{split:<8}{s['min']:12.4g}{s['max']:12.4g}{s['mean_sq_norm']:14.6g}{s['total_variance']:14.6g}")
    if "toy" in info:
        t = info["toy"]
        click.echo(f"truth: {t['true_features']} features, expected L0 {t['expected_l0']:.4g}, "
                   f"activity entropy {t['true_entropy_bits_per_sample']:.2f} bits/sample"
                   + (f", {t['hierarchy_children']} children" if t["hierarchy_children"] else "")
                   + (f", {t['correlated_pairs']} correlated pairs" if t["correlated_pairs"] else ""))
    if "shards" in info:
        s = info["shards"]
        made = (f"; {s['model']['name']} {s['hook_point']}" if isinstance(s.get("model"), dict) and "hook_point" in s
                else "")
        click.echo(f"shards: {s['count']} of up to {s['shard_tokens']} rows, stored as {s['stored_dtype']}{made}")
