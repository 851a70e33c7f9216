"""Files that are not files (issue 19 §8): a FIFO, socket, device or folder where a reader expects a
file would block it forever (a FIFO's open waits for a writer) or read without end (/dev/zero).
Every file read from a folder that came from elsewhere (a model, a peer's SAE, a shard folder, an
activation file) is first checked here to be a regular file.

Symbolic links are followed, as every reader follows them: a link is what its target is, and its
target must be a regular file (a link to a FIFO is refused, a link to a missing file is missing).
Which links a folder may hold is its reader's rule (``data/shards.py`` says it for shard folders).
The check is a stat before the reader opens the path, so a file swapped between the two is not
caught; readers that open the file themselves (``core/jsonio.py``) check the opened descriptor too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mdlcodec.core.errors import MdlcodecError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def kind(mode: int) -> str:
    """What a stat mode that is not a regular file's is, in words ("a FIFO (named pipe)", "a folder")."""
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def regular_file(path: str | Path, what: str | None = None, error: type[MdlcodecError] = MdlcodecError) -> os.stat_result:
    """``os.stat(path)`` (symbolic links followed) if path is a regular file; otherwise ``error`` with
    one line "<what> is missing", "<what> is a FIFO (named pipe), not a regular file", ... (``what``:
    how the caller names the file, the path itself by default)."""
    what = str(path) if what is None else what
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(f"{what} is a symbolic link to a missing file") from None
        raise error(f"{what} is missing") from None
    except (OSError, ValueError) as e:  # a loop of links, a name too long, a file as a folder, a NUL byte
        raise error(f"{what}: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} is {kind(st.st_mode)}, not a regular file")
    return st
