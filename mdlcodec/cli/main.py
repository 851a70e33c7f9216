"""The `mdlcodec` command: the group, and every subcommand registered explicitly below.

Subcommands live in sibling modules (``*_cmd.py``); they import nothing from this module, so
there is no import cycle. The CLI is the only layer that prints or exits."""

from __future__ import annotations

import signal
import sys
import threading

import click

from mdlcodec.core.errors import MdlcodecError, os_error_line

FIXES = {
    "k": "give --k",
    "l1_coeff": "give --l1",
    "device": "use --device cpu",
    "overwrite": "pass --force to replace it, or choose another output",
    "max_mse": "give a larger --max-mse (or a better SAE)",
    "tol": "try wider SAEs (--widths) or a larger --tol",
    "tables": "run `mdlcodec fit-codec MODEL DATA` first",
    "tolerance": "give --max-fvu or --max-mse",
    "tolerance_unmet": "give a larger --max-fvu / --max-mse",
    "objectives": "give --objectives mse or mse,mdl",
    "expansion": "pass --allow-expansion to decode it anyway",
    "objective": "--objective mdl trains --arch jumprelu, batchtopk or topk (jumprelu only with it)",
}
"""What the user changes on the command line for a library error's ``param`` (MdlcodecError)."""


def error_line(e: MdlcodecError) -> str:
    """The one line a library error reaches the user as: its message, then the flag to change."""
    fix = FIXES.get(getattr(e, "param", None) or "")
    return f"error: {e}" + (f": {fix}" if fix else "")


class _Terminated(BaseException):
    """A terminating signal (``_SIGNALS``), raised like KeyboardInterrupt so that every ``finally``
    (temporary files, spill files) runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    raise _Terminated(signum)


_SIGNALS = {getattr(signal, name): word for name, word in (
    ("SIGTERM", "terminated"), ("SIGHUP", "hung up"), ("SIGQUIT", "quit"), ("SIGUSR1", "user signal 1"),
    ("SIGUSR2", "user signal 2"), ("SIGALRM", "alarm clock"), ("SIGVTALRM", "virtual timer expired"),
    ("SIGPROF", "profiling timer expired"), ("SIGXCPU", "CPU time limit exceeded")) if hasattr(signal, name)}
"""Every signal whose default action ends the process: each ends it as SIGTERM does, after the outputs'
temporary files are removed (SIGINT is Python's KeyboardInterrupt; SIGPIPE and SIGXFSZ Python ignores,
so that a write fails with an OSError; SIGKILL cannot be caught, see ``core.atomic.remove_stale``)."""


class _Group(click.Group):
    """A click group that turns library errors and OSErrors into one line on stderr and exit status 1, and SIGINT,
    SIGTERM, SIGHUP or another terminating signal (``_SIGNALS``) into one line and 128 + its number (130, 143,
    129, ...) after the outputs' temporary files are removed."""

    def invoke(self, ctx: click.Context):
        before = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                before[signum] = signal.signal(signum, _on_signal)
        try:
            return super().invoke(ctx)
        except MdlcodecError as e:
            click.echo(error_line(e), err=True)
            sys.exit(1)
        except OSError as e:  # a full disk, EACCES, EROFS, EIO: one line naming the path
            click.echo(f"error: {os_error_line(e)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except _Terminated as e:
            click.echo(_SIGNALS[e.signum], err=True)
            sys.exit(128 + e.signum)
        finally:  # a command invoked in a process that goes on (a test, a notebook) leaves its handlers as they were
            for signum, handler in before.items():
                signal.signal(signum, handler)


@click.group(cls=_Group)
@click.version_option(package_name="mdlcodec")
def cli() -> None:
    """Sparse autoencoders as codecs: train, encode, decode, select by description length."""


def _register() -> None:
    from mdlcodec.cli import (
        bench_cmd,
        codec_cmd,
        data_cmd,
        demo_cmd,
        dl_cmd,
        harvest_cmd,
        hierarchy_cmd,
        measure_cmd,
        peers_cmd,
        select_cmd,
        train_cmd,
    )

    for command in (data_cmd.data_cmd, train_cmd.train_cmd, codec_cmd.fit_codec_cmd, codec_cmd.encode_cmd,
                    codec_cmd.decode_cmd, codec_cmd.info_cmd, hierarchy_cmd.hierarchy_cmd, select_cmd.select_cmd,
                    measure_cmd.measure_cmd, bench_cmd.bench_cmd, bench_cmd.splitting_cmd,
                    bench_cmd.hierarchy_figure_cmd, demo_cmd.demo_cmd, dl_cmd.dl, harvest_cmd.harvest_cmd,
                    peers_cmd.import_cmd, peers_cmd.export_cmd):
        cli.add_command(command)


_register()
