"""`mdlcodec harvest`: a transformer's residual stream over text, written as a shard folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mdlcodec.cli.options import threads_option

_FIXES = {
    "layer": "choose another --layer",
    "text": "give --text PATH (a .txt file, a folder of them, or a saved dataset)",
    "max_length": "give a smaller --max-length",
    "dtype": "use --dtype float32",
    "max_norm_ratio": "give a larger --max-norm-ratio, or leave it out",
}
"""The flag to change for a harvest error's ``param`` (beside the CLI's own FIXES)."""


@click.command("harvest")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--layer", type=int, required=True,
              help="Hidden state to take: 0 is the embeddings, i the residual stream after block i.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Shard folder to write (built beside it, then renamed into place).")
@click.option("--text", "texts", type=click.Path(path_type=Path), multiple=True,
              help="A .txt file, a folder of .txt files, or a datasets dataset saved on disk with a 'text' "
                   "column; repeat for several.")
@click.option("--tokens", type=click.IntRange(min=1), help="Stop after this many tokens (default: all the text).")
@click.option("--shard-tokens", type=click.IntRange(min=1), default=65536, show_default=True,
              help="Rows (tokens) per shard; the last shard may be shorter.")
@click.option("--max-length", type=click.IntRange(min=2), default=128, show_default=True,
              help="Tokens per sequence, BOS/CLS and EOS/SEP included; longer text is cut into more sequences.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Sequences per forward pass.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Dtype of the stored activations.")
@click.option("--max-norm-ratio", type=float,
              help="Leave out tokens whose activation norm exceeds this multiple of the median norm (of the first "
                   "forward pass's tokens): the massive activations of a few tokens; recorded in the manifest.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@threads_option
@click.option("--force", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def harvest_cmd(model: Path, layer: int, out_dir: Path, texts: tuple[Path, ...], tokens: int | None,
                shard_tokens: int, max_length: int, batch_size: int, dtype: str, max_norm_ratio: float | None,
                device: str, force: bool, as_json: bool) -> None:
    """Run the Hugging Face transformers model in the local folder MODEL over the text and write the
    hidden state of --layer at every token (BOS/CLS, EOS/SEP and padding dropped) into OUT_DIR as
    .npy shards with a manifest.json. OUT_DIR is then a dataset spec: `mdlcodec data OUT_DIR`,
    `mdlcodec train OUT_DIR ...`, `mdlcodec encode OUT_DIR ...`. Needs the extra: pip install 'mdlcodec[lm]'."""
    from mdlcodec.core.errors import MdlcodecError
    from mdlcodec.data.harvest import harvest

    try:
        r = harvest(model, layer, out_dir, list(texts), tokens, shard_tokens, max_length, batch_size, dtype, device,
                    force, progress=not as_json, max_norm_ratio=max_norm_ratio)
    except MdlcodecError as e:
        fix = _FIXES.get(e.param or "")
        if fix is None:
            raise
        raise type(e)(f"{e}: {fix}") from None
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{r['tokens']:,} tokens of layer {r['layer']} of {r['model']} (d {r['d']}, {r['dtype']}) -> "
               f"{r['output']}: {r['shards']} shards, {r['seconds']:.1f} s ({r['tokens_per_s']:,.0f} tokens/s)")
    if "norm_cut" in r:
        c = r["norm_cut"]
        click.echo(f"left out {c['dropped_tokens']:,} tokens of norm above {c['threshold']:.4g} "
                   f"({c['max_norm_ratio']:g} x the median {c['median_norm']:.4g})")
    if r["text_ran_out"]:
        click.echo(f"warning: the text ran out before --tokens {tokens:,}", err=True)
