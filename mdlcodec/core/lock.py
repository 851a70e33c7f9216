"""One run at a time in an output folder: an exclusive lock that a second run meets at once and
refuses in one line, released by the system however the first run ends (kill -9 included).

The lock is ``fcntl.flock`` on ``FOLDER/.mdlcodec.lock``, removed when the run ends; a lock file a
killed run left is taken over. Where there is no ``fcntl`` (not POSIX) folders are not locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from mdlcodec.core.errors import MdlcodecError

LOCK_FILE = ".mdlcodec.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock (an existing folder) while the block runs; MdlcodecError naming the folder
    and ``what`` (the command) if another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = Path(folder) / LOCK_FILE
    for _ in range(3):  # the file may be removed by its holder between our open and our lock: open it again
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise MdlcodecError(f"cannot lock {folder}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise MdlcodecError(f"{folder} is being written by another {what} run: wait for it, or give another "
                                "output folder") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    else:
        raise MdlcodecError(f"cannot lock {folder}: its lock file keeps changing")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still held: a later run makes a new one
        os.close(fd)
