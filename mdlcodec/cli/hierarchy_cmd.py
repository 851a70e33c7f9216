"""`mdlcodec hierarchy`: the strongest parent-child feature pairs of a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mdlcodec.cli.options import threads_option


@click.command("hierarchy")
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Pairs to print.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the whole hierarchy as JSON (parents, mutual information, P(child | parent)).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path),
              help="For image data: save the --top strongest pairs' decoder rows side by side, on one colour scale.")
@click.option("--device", default="cpu", show_default=True)
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the whole hierarchy and what was written).")
def hierarchy_cmd(model: Path, data: str, top: int, output: Path | None, png: Path | None, device: str,
                  as_json: bool) -> None:
    """Print MODEL's strongest parent-child pairs on DATA's training split: its stored forest (a tree
    SAE's, or one fitted by `fit-codec --hierarchy chowliu`), else a Chow-Liu forest learned now."""
    from mdlcodec.codec import Codec
    from mdlcodec.core.atomic import refuse_inputs, write_text
    from mdlcodec.core.errors import DataError
    from mdlcodec.data import load_dataset, spec_paths
    from mdlcodec.experiments.hierarchy_report import (
        image_shape,
        model_hierarchy,
        plot_pairs,
    )

    inputs = (model, *spec_paths(data))
    for path in (output, png):  # before the work, not after it
        if path is not None:
            refuse_inputs(path, inputs)
    codec = Codec.load(model, device)
    ds = load_dataset(data)
    _, report = model_hierarchy(codec, ds.train)
    shape = image_shape(codec.decoder.d_in) if png is not None else None
    if png is not None and shape is None:
        raise DataError(f"--png needs image data (a square d_in), this model has d_in {codec.decoder.d_in}")
    written = []
    if output is not None:
        write_text(output, json.dumps(report) + "\n", inputs)
        written.append(str(output))
    if png is not None:
        plot_pairs(codec.decoder.W_dec, report["edges"], shape, png, top=top)
        written.append(str(png))
    if as_json:
        click.echo(json.dumps({**report, "written": written}))
        return
    click.echo(f"{report['kind']} hierarchy ({report['source']}) over {report['d_sae']} features: "
               f"{report['edges_count']} edges, {report['table_bits']:.0f} bits of tables, "
               f"counted on {report['n_samples']} training samples")
    click.echo(f"{'parent':>7} {'child':>7} {'MI bits':>9} {'P(c|p)':>8} {'P(c|~p)':>8}  relation")
    for e in report["edges"][:top]:
        click.echo(f"{e['parent']:>7} {e['child']:>7} {e['mutual_information_bits']:>9.4f} "
                   f"{e['p_child_given_parent']:>8.3f} {e['p_child_given_not_parent']:>8.4f}  {e['relation']}")
    for path in written:
        click.echo(f"wrote {path}")
