"""The `mdlcodec` command. Subcommands live in sibling modules and are registered here."""

from __future__ import annotations

import sys

import click

from mdlcodec.core.errors import MdlcodecError


class _Group(click.Group):
    """A click group that turns library errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MdlcodecError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="mdlcodec")
def cli() -> None:
    """Sparse autoencoders as codecs: train, encode, decode, select by description length."""


def _register() -> None:
    from mdlcodec.cli import commands  # noqa: F401  (subcommands attach themselves to `cli`)


_register()
