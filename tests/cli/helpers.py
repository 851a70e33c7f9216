"""Helpers of the CLI tests: run a command line (in this process, or in a fresh one), and check a
one-line error."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from mdlcodec.cli.main import cli


def run(*args):
    """Invoke the command in this process; torch's thread count (which --threads sets) is restored
    after, so that it does not leak into the tests that run next."""
    import torch

    before = torch.get_num_threads()
    try:
        return CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        torch.set_num_threads(before)


def run_process(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m mdlcodec ARGS` in a fresh process from the repository root: stdout and stderr as a
    terminal gets them, Python's warnings shown (PYTHONWARNINGS=default), one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, "-m", "mdlcodec", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=Path(__file__).resolve().parents[2])


def one_line_error(r, needle: str) -> str:
    """Assert that the run failed with one line "error: ..." containing needle (no traceback); return it."""
    assert r.exit_code != 0, r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.exception
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]
