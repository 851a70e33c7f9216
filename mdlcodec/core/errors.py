"""Typed errors. Library code raises these; only mdlcodec.cli prints them (one line, no traceback)."""


class MdlcodecError(Exception):
    """Base of every error a user can cause with bad input.

    The message says what is wrong in the library's own terms; ``param`` names the argument or
    input that would fix it ("k", "overwrite", "max_mse", "tables", ...), so that the CLI, and only
    the CLI, can add which flag or command to change."""

    def __init__(self, message: str = "", param: str | None = None):
        super().__init__(message)
        self.param = param


class DataError(MdlcodecError):
    """A dataset that cannot be read or is not fit for use: missing file, wrong shape, NaN/Inf, empty."""


class ModelError(MdlcodecError):
    """A model directory that cannot be read, an unknown architecture, or a model that does not fit the data."""


class CodecError(MdlcodecError):
    """A .mdlc file that is corrupted, truncated, of another version, or does not match its model."""


class ForestError(ModelError, ValueError):
    """Parent links that do not form a forest (out of range, a feature its own parent, a cycle)."""


def first_line(e: BaseException, limit: int = 300) -> str:
    """An exception's message as one line: its first non-empty line, stripped, at most ``limit``
    characters (a crafted file cannot flood the user's line), or its type's name if it has none."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:limit] if lines else type(e).__name__


def os_error_line(e: OSError, limit: int = 300) -> str:
    """An OSError (a full disk, a folder one may not write, a read-only filesystem, EIO) as one line
    naming its path(s): "PATH: No space left on device"."""
    what = e.strerror or first_line(e, limit)
    paths = [str(p) for p in (e.filename, getattr(e, "filename2", None)) if p is not None]
    return (" -> ".join(paths) + ": " + what)[:limit] if paths else what[:limit]
