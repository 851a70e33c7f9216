"""`mdlcodec fit-codec`, `encode`, `decode`, `info`: the codec from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from mdlcodec.cli.options import max_fvu_option, parallel_options, resolve_max_mse, threads_option
from mdlcodec.codec.expansion import MAX_EXPANSION
from mdlcodec.codec.format.container import MAX_CHUNK_ROWS

_model_dir = click.Path(exists=True, file_okay=False, path_type=Path)
_in_file = click.Path(exists=True, dir_okay=False, path_type=Path)
_out_file = click.Path(dir_okay=False, path_type=Path)


def _absolute(spec: str) -> str:
    """A dataset spec with its file or folder made absolute, so that a worker elsewhere (a Dask
    worker in another directory) opens the same one; other specs as they are."""
    path, sep, key = spec.rpartition(":") if not Path(spec).exists() else (spec, "", "")
    return str(Path(path).resolve()) + sep + key if path and Path(path).exists() else spec


def _parse_rows(text: str) -> tuple[int, int | None]:
    """--rows A:B, A: or :B -> (A, B or None); MdlcodecError (one line) if it is not that."""
    from mdlcodec.core.errors import MdlcodecError

    m = re.fullmatch(r"\s*([0-9]*)\s*:\s*([0-9]*)\s*", text)
    if m is None:
        raise MdlcodecError(f"--rows {text!r} is not A:B (two non-negative row numbers, B excluded; B may be "
                            "left out: A:)")
    a, b = m.groups()
    return int(a) if a else 0, int(b) if b else None


def _fmt_bits(info: dict) -> list[str]:
    b = info["bits_per_sample"]
    names = {"header": "header", "model": "model section", "activity": "  activity", "values": "  values",
             "payload": "payload", "file": "file", "cross_entropy": "cross-entropy"}
    return [f"  {names[k]:<15}{b[k]:12.2f}" for k in ("header", "model", "payload", "activity", "values", "file",
                                                     "cross_entropy") if k in b]


@click.command("fit-codec")
@click.argument("model", type=_model_dir)
@click.argument("data")
@click.option("--step", type=click.FloatRange(min=0, min_open=True), help="Quantiser step in latent units.")
@click.option("--max-mse", type=click.FloatRange(min=0, min_open=True),
              help="Use the coarsest step whose quantised test MSE is at most this (default: at most 1% above the SAE's own).")
@max_fvu_option
@click.option("--hierarchy", type=click.Choice(["auto", "flat", "chowliu"]), default="auto", show_default=True,
              help="Activity code: auto (a tree SAE's forest, else flat), flat, or a Chow-Liu forest learned "
                   "from the training codes (stored with the tables).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--rdo", is_flag=True,
              help="With --max-mse: also try rate-distortion optimised encoding and per-feature steps, and keep "
                   "whichever codes the test split shortest within it (encode then uses it; files and decoder unchanged).")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def fit_codec_cmd(model: Path, data: str, step: float | None, max_mse: float | None, max_fvu: float | None,
                  hierarchy: str, device: str, rdo: bool, as_json: bool) -> None:
    """Fit MODEL's quantiser and entropy tables on DATA's training split (writes MODEL/codec.safetensors)."""
    from mdlcodec.codec.rate.precision import fit_codec
    from mdlcodec.data import load_dataset
    from mdlcodec.models import load_sae

    if step is not None and (max_mse is not None or max_fvu is not None):
        raise click.UsageError("give --step or a tolerance (--max-mse, --max-fvu), not both")
    if rdo and max_mse is None and max_fvu is None:
        from mdlcodec.core.errors import MdlcodecError

        raise MdlcodecError("--rdo needs --max-mse or --max-fvu (the tolerance that sets its lambda and steps)")
    ds = load_dataset(data)
    max_mse = resolve_max_mse(ds.test, max_mse, max_fvu)
    if rdo:
        from mdlcodec.codec.rate.rd_fit import fit_rd_codec

        say = (lambda m: None) if as_json else (lambda m: click.echo(f"  {m}", err=True))
        codec, rd_report = fit_rd_codec(load_sae(model), ds.train, ds.test, max_mse, device, hierarchy, progress=say)
        codec.save_tables(model)
        if as_json:
            click.echo(json.dumps(rd_report))
            return
        sub = rd_report["search_test_rows"] < rd_report["test_rows"]
        if sub:
            click.echo(f"searched on {rd_report['search_test_rows']:,} of the {rd_report['test_rows']:,} test rows "
                       f"(tables of {rd_report['search_train_rows']:,} training rows); the kept codec on all of them:")
        for v in rd_report["variants"]:
            name = " + ".join(n for n, on in (("per-feature steps", v["per_feature"]), ("RDO", v["rdo"])) if on) or "plain"
            if v["rdo"] and v.get("kappa") is not None:
                name += f" (kappa {v['kappa']:g})"
            what = "estimated at the tolerance" if v.get("estimated") else f"test MSE {v['test_mse']:.6g}"
            click.echo(f"{name:<34} {'search' if sub else 'test'} cross-entropy {v['bits_per_sample']:8.2f} bits/sample  "
                       f"{what}" + (f"  lambda {v['rdo_lambda']:.4g}" if v["rdo"] else ""))
        c = rd_report["chosen"]
        click.echo(f"kept the shortest, {c['bits_per_sample']:.2f} bits/sample (test MSE {c['test_mse']:.6g})"
                   + (f", RDO lambda {c['rdo_lambda']:.4g}: encode optimises with it" if c["rdo"] else "")
                   + f"; tables written to {model}")
        return
    codec, report = fit_codec(load_sae(model), ds.train, ds.test, step, max_mse, device, hierarchy)
    codec.save_tables(model)
    if as_json:
        click.echo(json.dumps(report))
        return
    b = report["cross_entropy_bits_per_sample"]
    click.echo(f"step {report['step']:.5g}  quantised test MSE {report['quantised_test_mse']:.6g} "
               f"(unquantised {report['test_mse']:.6g})  L0 {report['quantised_l0']:.2f}")
    click.echo(f"test cross-entropy {b['total']:.2f} bits/sample = activity {b['activity']:.2f} + values {b['values']:.2f} "
               f"({report['bits_per_value']:.2f} bits/value); tables written to {model}")
    if "hierarchy" in report:
        h = report["hierarchy"]
        click.echo(f"hierarchy: {h['kind']}, {h['edges']} edges ({h['table_bits']:.0f} bits of tables); flat coding "
                   f"would take {h['flat_cross_entropy_bits_per_sample']['total']:.2f} bits/sample")


_split = click.option("--split", type=click.Choice(["all", "train", "test"]), default="all", show_default=True,
                      help="Rows of DATA: every row of a file (or all of mnist / toy), or its train or test split.")


@click.command("encode")
@click.argument("data")
@click.option("-m", "--model", type=_model_dir, required=True, help="SAE directory with codec tables.")
@click.option("-o", "--output", type=_out_file, required=True)
@_split
@click.option("--embed-model", is_flag=True, help="Store the decoder and tables in the file (self-contained two-part code).")
@click.option("--chunk-size", type=click.IntRange(min=1, max=MAX_CHUNK_ROWS), default=4096, show_default=True,
              help="Samples per chunk (one ANS stream; decoding holds one chunk).")
@click.option("--hierarchy", type=click.Choice(["model", "flat", "chowliu", "tree"]), default="model", show_default=True,
              help="Activity code: the model tables' own, flat (drop a stored hierarchy), or insist on the stored "
                   "Chow-Liu forest (fit-codec --hierarchy chowliu) or tree SAE forest.")
@click.option("--device", default="cpu", show_default=True)
@threads_option
@parallel_options
@click.option("--file-id", hidden=True, help="32 hex digits: the file's identifier instead of a new random one "
                                            "(tests: the same rows and file id give the same bytes).")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def encode_cmd(data: str, model: Path, output: Path, split: str, embed_model: bool, chunk_size: int, hierarchy: str,
               device: str, workers: int, scheduler: str | None, scheduler_timeout: float, file_id: str | None,
               force: bool, as_json: bool) -> None:
    """Encode the activations DATA names into OUTPUT (.mdlc). DATA: a file [n, d] (.npy, .npz,
    .safetensors, .pt, optionally PATH:KEY), or any dataset spec with --split (e.g. mnist --split test).

    With --workers N or --scheduler ADDRESS, each worker loads the model from its folder and reads its
    chunks' rows of DATA itself where DATA reads lazily (a .npy memory-mapped, a shard folder shard by
    shard; other inputs' rows are sent to it); this process writes the chunks in order and holds only
    the decoder's weights and the tables (for the header, the fingerprints and the model section),
    not the SAE's encoder."""
    import numpy as np

    from mdlcodec.codec import Codec, RowSource, encode_file
    from mdlcodec.core.errors import ModelError
    from mdlcodec.data import load_rows, spec_paths

    codec = Codec.load(model, device, encoder=workers == 1 and scheduler is None)  # workers load their own
    stored = codec.entropy_model.hierarchy
    if hierarchy == "flat":
        codec = codec.with_hierarchy(None)
    elif hierarchy != "model" and (stored is None or stored.kind != {"chowliu": "conditional"}.get(hierarchy, hierarchy)):
        fix = ("run `mdlcodec fit-codec MODEL DATA --hierarchy chowliu` first" if hierarchy == "chowliu"
               else "train a tree SAE (--arch tree)")
        raise ModelError(f"the codec tables in {model} hold no {hierarchy} hierarchy: {fix}")
    x = load_rows(data, split)
    inputs = spec_paths(data)  # whatever split is read: the file is the input
    # workers open an input that reads lazily (a .npy, a shard folder) themselves; the rows of one
    # held in memory (.npz, .pt, mnist, toy) are sent by this process rather than loaded by each
    lazy = isinstance(x, np.memmap) or not isinstance(x, np.ndarray)
    source = RowSource(load_rows, (_absolute(data), split)) if lazy else None
    r = encode_file(codec, x, output, chunk_size, embed_model, force, inputs=inputs, what=data, file_id=file_id,
                    source=source, workers=workers, scheduler=scheduler, scheduler_timeout=scheduler_timeout,
                    device=device)
    for line in r.get("warnings", ()):
        click.echo(f"warning: {line}", err=True)
    r = {"output": str(output), **r, "bits_per_sample": 8 * r["bytes"] / max(r["samples"], 1),
         "rdo_lambda": codec.rdo_lambda}
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{r['samples']} samples -> {output} ({r['bytes']} bytes, {r['bits_per_sample']:.2f} bits/sample)")
    if codec.rdo_lambda is not None:
        click.echo(f"tables: rate-distortion optimised (fit-codec --rdo), lambda {codec.rdo_lambda:.4g}: each sample's "
                   "code searched for the fewest bits + lambda x squared error; decoding is unchanged")


_EXPANSION_HELP = (f"Decode a file whose rows would be more than {MAX_EXPANSION:,} times its size and over 1 GiB "
                   "(refused by default: real files reach a few hundred times; a decompression bomb).")


@click.command("decode")
@click.argument("src", type=_in_file)
@click.option("-m", "--model", type=_model_dir, help="SAE directory (not needed for self-contained files).")
@click.option("-o", "--output", type=_out_file, required=True)
@click.option("--latents", is_flag=True,
              help="Write the quantised latents instead (.npz in scipy's CSR layout: scipy.sparse.load_npz reads it).")
@click.option("--rows", "rows_text", metavar="A:B",
              help="Only rows A to B (B excluded, as a Python slice; A:, to the end), exactly as a full decode "
                   "gives them. Reads only the chunks that hold them, found by the file's index; a "
                   "version-1 file (no index) is read in order from its start up to the last chunk needed.")
@parallel_options
@click.option("--allow-expansion", is_flag=True, help=_EXPANSION_HELP)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def decode_cmd(src: Path, model: Path | None, output: Path, latents: bool, rows_text: str | None, workers: int,
               scheduler: str | None, scheduler_timeout: float, allow_expansion: bool, force: bool,
               as_json: bool) -> None:
    """Decode SRC (.mdlc) into activations (.npy) or, with --latents, sparse latents (.npz).

    With --workers N or --scheduler ADDRESS, chunks are decoded (and checked) by the workers, each
    loading the model from its folder (or from SRC if it is self-contained); this process reads SRC
    and writes the rows in order."""
    from mdlcodec.codec import decode_file
    from mdlcodec.codec.files import codec_for_file

    rows = _parse_rows(rows_text) if rows_text is not None else None
    r = decode_file(src, output, codec_for_file(src, model) if model else None, latents, force, rows=rows,
                    workers=workers, scheduler=scheduler, scheduler_timeout=scheduler_timeout,
                    allow_expansion=allow_expansion)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{r['samples']} samples -> {output}")


@click.command("info")
@click.argument("src", type=_in_file)
@click.option("-m", "--model", type=_model_dir, help="SAE directory (for files that do not embed their model).")
@click.option("--against", help="The original activations (a dataset spec, rows as --split picks): report MSE and "
                                 "FVU (decodes every chunk).")
@_split
@click.option("--decode", is_flag=True, help="Decode every chunk (needs the model): the payload split into activity "
                                             "and values, and the cross-entropy. Takes time with the rows the file holds.")
@click.option("--allow-expansion", is_flag=True, help=_EXPANSION_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_cmd(src: Path, model: Path | None, against: str | None, split: str, decode: bool, allow_expansion: bool,
             as_json: bool) -> None:
    """What SRC holds: samples, and bits per sample by part (payload, file) beside the model entropy,
    read from the file's framing and tables; with --decode or --against also activity, values and the
    cross-entropy (the README's "What the figures mean")."""
    from mdlcodec.codec import inspect_file
    from mdlcodec.codec.files import codec_for_file
    from mdlcodec.data import load_rows

    x = load_rows(against, split) if against is not None else None
    info = inspect_file(src, codec_for_file(src, model) if model else None, x, decode, allow_expansion)
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"{info['file']}: {info['samples']} samples, d_in {info['d_in']}, d_sae {info['d_sae']}, "
               f"{info['chunks']} chunks, {info['bytes']} bytes"
               + (", self-contained" if info["self_contained"] else ""))
    click.echo("bits per sample:")
    for line in _fmt_bits(info):
        click.echo(line)
    if "model_entropy_bits_per_sample" in info:
        e = info["model_entropy_bits_per_sample"]
        click.echo(f"  {'model entropy':<15}{e['total']:12.2f}   (activity {e['activity']:.2f}, values {e['values']:.2f})")
        click.echo(f"decoder bits: {info['decoder_bits']:,} (the two-part term, sent once; rows {info['decoder_rows']})")
    if "hierarchy" in info:
        h = info["hierarchy"]
        click.echo(f"activity coded under a {h['kind']} forest: {h['edges']} edges, {h['table_bits']:.0f} bits of tables once")
    if "mse" in info:
        click.echo(f"reconstruction: MSE {info['mse']:.6g}, FVU {info['fvu']:.4f}")
