"""`mdlcodec dl bound|dense|onehot`: the paper's Eq. 1 and Appendix B calculators (bits per token)."""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, TypeVar

import click

from mdlcodec.core.errors import MdlcodecError

T = TypeVar("T")

_json_opt = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
_bits_opt = click.option("--bits", "bits", type=float, default=7.0, show_default=True,
                         help="B: bits per non-zero value (Appendix B: 7, 8-bit with the sign fixed).")


def _compute(fn: Callable[..., T], *args) -> T:
    """Run a theory function; its ValueError (bad argument) becomes the CLI's one-line error."""
    try:
        return fn(*args)
    except ValueError as e:
        raise MdlcodecError(str(e)) from None


def _breakdown_lines(b) -> list[str]:
    return [f"  index bits   {b.index_bits:12.2f}",
            f"  value bits   {b.value_bits:12.2f}",
            f"  total        {b.total_bits:12.2f} bits/token  (~{b.total_bits:,.0f})"]


@click.group("dl")
def dl() -> None:
    """Description-length calculators from the paper (Eq. 1, Appendix B), in bits per token."""


@dl.command("bound", short_help="Sparse explanation: the bound DL <= L0 (B + log2 D).")
@click.option("--l0", type=float, default=65.0, show_default=True, help="Mean active features per token.")
@click.option("--width", type=int, default=25_000, show_default=True, help="D: dictionary size.")
@_bits_opt
@_json_opt
def bound_cmd(l0: float, width: int, bits: float, as_json: bool) -> None:
    """Eq. 1's crude bound DL <= L0 (B + log2 D) for a sparse explanation."""
    from mdlcodec.theory import dl_bound_sparse

    b = _compute(dl_bound_sparse, l0, width, bits)
    if as_json:
        click.echo(json.dumps({"l0": l0, "width": width, "bits_per_value": bits, **dataclasses.asdict(b)}))
        return
    click.echo(f"Eq. 1: DL <= L0 (B + log2 D) = {l0:g} x ({bits:g} + {b.log2_width:.2f})")
    click.echo("\n".join(_breakdown_lines(b)))


@dl.command("dense")
@click.option("--d", "d", type=int, default=768, show_default=True, help="Activation dimension.")
@_bits_opt
@_json_opt
def dense_cmd(d: int, bits: float, as_json: bool) -> None:
    """Dense explanation: send all d activations, DL = B d."""
    from mdlcodec.theory import dl_dense

    b = _compute(dl_dense, d, bits)
    if as_json:
        click.echo(json.dumps({"d": d, "bits_per_value": bits, **dataclasses.asdict(b)}))
        return
    click.echo(f"dense: DL = B d = {bits:g} x {d}")
    click.echo("\n".join(_breakdown_lines(b)))


@dl.command("onehot", short_help="One-hot extreme: L0 = 1, D = vocab^seq, and the paper's 13,993.")
@click.option("--vocab", type=int, default=50_257, show_default=True, help="Vocabulary size.")
@click.option("--seq", type=int, default=128, show_default=True, help="Context length in tokens.")
@_bits_opt
@_json_opt
def onehot_cmd(vocab: int, seq: int, bits: float, as_json: bool) -> None:
    """One-hot extreme: a feature per possible context, L0 = 1, D = vocab^seq, under Eq. 1."""
    from mdlcodec.theory import dl_onehot

    r = _compute(dl_onehot, vocab, seq, bits)
    if as_json:
        click.echo(json.dumps({"vocab": vocab, "seq": seq, "bits_per_value": bits,
                               "eq1": dataclasses.asdict(r.eq1), "paper_printed": r.paper_printed,
                               "product_reading": r.product_reading, "note": r.note}))
        return
    click.echo(f"one-hot under Eq. 1: L0 = 1, log2 D = {seq} x log2 {vocab} = {r.eq1.log2_width:.2f}")
    click.echo("\n".join(_breakdown_lines(r.eq1)))
    click.echo(f"  paper printed {r.paper_printed:12,d} bits/token")
    click.echo(f"note: {r.note}")
