"""Writing outputs safely: a temporary file beside the destination, renamed into place on success.

An error never leaves a half-written file, and an input is never overwritten. ``atomic_output`` is
the one mechanism (``atomic_folder`` for a folder of files, built beside its destination);
``write_text`` and ``save_figure`` are the one way to write text and figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from mdlcodec.core.errors import MdlcodecError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(dst: str | Path, inputs: tuple[str | Path, ...] = (), overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``dst``; renames it to ``dst`` if the block succeeds.

    Refuses (MdlcodecError) to replace any of ``inputs``, or an existing ``dst`` unless ``overwrite``.
    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
    """
    dst = Path(dst)
    for src in inputs:
        if dst.exists() and Path(src).exists() and os.path.samefile(src, dst):
            raise MdlcodecError(f"refusing to overwrite the input {src} with the output")
    if dst.exists() and not overwrite:
        raise MdlcodecError(f"{dst} exists", param="overwrite")
    if not dst.parent.is_dir():
        raise MdlcodecError(f"output folder {dst.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp" + dst.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(dst: str | Path, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """Yields a new empty folder beside ``dst``; renames it to ``dst`` if the block succeeds, and
    removes it (and whatever was written in it) if the block fails or is interrupted.

    Refuses (MdlcodecError) an existing ``dst`` unless ``overwrite`` (then the old one is removed only
    after the new one is complete), a ``dst`` that is a file, and a ``dst`` that is or holds any of
    ``inputs`` (checked before and after the block)."""
    dst = Path(dst)

    def check_inputs() -> None:
        here = dst.resolve()
        for src in inputs:
            s = Path(src).resolve()
            if s == here or here in s.parents:
                raise MdlcodecError(f"refusing to replace {dst}: it holds the input {src}")

    if dst.exists() and not dst.is_dir():
        raise MdlcodecError(f"{dst} exists and is not a folder")
    if dst.exists() and not overwrite:
        raise MdlcodecError(f"{dst} exists", param="overwrite")
    check_inputs()
    if not dst.parent.is_dir():
        raise MdlcodecError(f"output folder {dst.parent} does not exist")
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    old = None
    try:
        yield tmp
        check_inputs()
        if dst.exists():
            if not overwrite:
                raise MdlcodecError(f"{dst} exists", param="overwrite")
            old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".old"))
            os.replace(dst, old / dst.name)
        try:
            os.replace(tmp, dst)
        except BaseException:
            if old is not None:  # put the old folder back
                os.replace(old / dst.name, dst)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int | None = None) -> Path:
    """Save a matplotlib Figure as PNG at ``path`` atomically (``dpi``: matplotlib's default if None)."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", **({"dpi": dpi} if dpi is not None else {}))
    return Path(path)
