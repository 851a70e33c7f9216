"""Options shared by several commands, defined once."""

from __future__ import annotations

import functools

import click

from mdlcodec.codec.parallel import DEFAULT_SCHEDULER_TIMEOUT

DEFAULT_THREADS = 1
"""torch threads unless --threads says otherwise. On a shared or busy machine more threads wait on
each other: the README's `train mnist` took 183 s with torch's default threads on a busy 2-core
machine and 20 s with one; the demo's toy SAE ran 20 times slower while another process held a core."""


def set_threads(n: int) -> None:
    """Run torch's CPU work on n threads."""
    import torch

    torch.set_num_threads(n)


def threads_option(command):
    """Decorator for a command that trains or encodes with torch: adds --threads (default
    ``DEFAULT_THREADS``) and sets torch's threads from it before the command runs. The value stays
    in the click context's params; the command function does not take it."""

    @functools.wraps(command)
    def run(*args, threads: int, **kwargs):
        set_threads(threads)
        return command(*args, **kwargs)

    return click.option(
        "--threads", type=click.IntRange(min=1), default=DEFAULT_THREADS, show_default=True,
        help="torch threads. More help only for wide SAEs on an idle machine; on a shared or busy one "
             "they wait on each other and can make the work many times slower.")(run)


def parallel_options(command):
    """Decorator for a command that codes chunks (encode, decode): adds --workers, --scheduler and
    --scheduler-timeout, passed on as ``workers``, ``scheduler`` and ``scheduler_timeout``."""
    for option in reversed((
        click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Code chunks in this many local processes (each on one torch thread); the file is "
                          "the same bytes whatever the number."),
        click.option("--scheduler", metavar="ADDRESS",
                     help="Code chunks on a Dask cluster: its scheduler's address, e.g. tcp://host:8786 "
                          "(needs `pip install 'mdlcodec[dask]'`; the model folder and input must be on a "
                          "filesystem every worker sees)."),
        click.option("--scheduler-timeout", type=click.FloatRange(min=0, min_open=True),
                     default=DEFAULT_SCHEDULER_TIMEOUT, show_default=True,
                     help="Seconds to wait for the Dask scheduler to answer."),
    )):
        command = option(command)
    return command


def shuffle_buffer_option(command):
    """Decorator for a command that trains: adds --shuffle-buffer ROWS (passed as ``shuffle_buffer``)."""
    from mdlcodec.data.stream import DEFAULT_BUFFER_ROWS

    return click.option(
        "--shuffle-buffer", type=click.IntRange(min=1), default=DEFAULT_BUFFER_ROWS, show_default=True,
        help="Rows of the shuffle buffer when DATA is a shard folder: training streams it shard by shard "
             "(memory: this many rows plus two shards) instead of loading it whole; ignored for data in memory.")(command)


def max_fvu_option(command):
    """Decorator for a command that takes --max-mse: adds --max-fvu (passed as ``max_fvu``), the same
    tolerance as a fraction of the test split's variance; ``resolve_max_mse`` turns it into an MSE."""
    return click.option(
        "--max-fvu", type=click.FloatRange(min=0, min_open=True),
        help="Tolerance as the largest fraction of the test split's variance left unexplained (instead of "
             "--max-mse; max_mse = max_fvu x the test variance, mean over dimensions).")(command)


def resolve_max_mse(test, max_mse: float | None, max_fvu: float | None) -> float | None:
    """The test-MSE tolerance from --max-mse or --max-fvu (None if neither; UsageError if both)."""
    if max_fvu is None:
        return max_mse
    if max_mse is not None:
        raise click.UsageError("give --max-mse or --max-fvu, not both")
    from mdlcodec.measurement.compare import tolerance

    return tolerance(test, max_fvu=max_fvu)["max_mse"]
