"""Helpers of the CLI tests: run a command line, and check a one-line error."""

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


def one_line_error(r, needle: str) -> str:
    """Assert that the run failed with one line "error: ..." containing needle (no traceback); return it."""
    assert r.exit_code != 0, r.output
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), r.exception
    lines = [ln for ln in r.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]
