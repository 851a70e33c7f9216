"""Writing outputs safely: a temporary file beside the destination, committed into place on success.

An error never leaves a half-written file, and an input is never overwritten. ``atomic_output`` is
the one mechanism (``atomic_folder`` for a folder of files, built beside its destination);
``write_text`` and ``save_figure`` are the one way to write text and figures.

Temporary names say whose they are: ``.NAME.PID.RANDOM.tmp[SUFFIX]`` beside ``NAME`` (and
``.NAME.PID.RANDOM.old`` for a folder being replaced), PID being the writing process; a NAME too
long for that within the folder's NAME_MAX is carried as its start and a hash of it (``_stem``). A process
killed outright (``kill -9``) cannot remove its own; the next write of the same output removes
every one whose process is gone (``remove_stale``), and leaves those of running processes alone.

Without ``overwrite`` the commit cannot replace a file that appeared meanwhile: a hard link made
under the destination's name fails if the name exists, so of two runs writing one output exactly
one succeeds and the other says the output exists (where the filesystem has no hard links, an
existence check and a rename, which two simultaneous runs can race). A folder is committed by a
rename, which fails onto a folder that holds anything.

OSErrors without a path of their own (a write that finds the disk full, EIO) are raised as
MdlcodecError naming the destination; the temporary file is removed whatever happened.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from mdlcodec.core.errors import MdlcodecError, first_line

_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.EACCES}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM), or a pid we cannot ask about: keep its files
        pass
    return True


def remove_stale(dst: str | Path) -> list[Path]:
    """Remove the temporary files and folders beside ``dst`` that a write of ``dst`` by a process no
    longer running left behind (their names hold its pid); returns what was removed. POSIX only."""
    dst = Path(dst)
    if os.name != "posix" or not dst.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(_stem(dst))}\.(\d+)\.[A-Za-z0-9_]+\.(?:tmp.*|old)")
    removed = []
    try:
        entries = list(dst.parent.iterdir())
    except OSError:
        return []
    for p in entries:
        m = pattern.fullmatch(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


_PID_DIGITS = 10  # room kept for a pid, so that a name's stem does not depend on whose it is
_DERIVED = 16  # room kept for names made from a temporary one (decode --latents' TMP.indices)


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _tmp_suffix(dst: Path) -> str:
    """".tmp" and dst's suffix (a writer such as numpy's may add its own otherwise); ".tmp" alone for
    a suffix longer than 16 bytes."""
    return ".tmp" + dst.suffix if len(os.fsencode(dst.suffix)) <= 16 else ".tmp"


def _stem(dst: Path) -> str:
    """dst's name as its temporary names carry it: the name itself where ``.NAME.PID.RANDOM.tmpSUFFIX``
    (and a derived name 16 bytes longer) fits the folder's NAME_MAX, else its start and a hash of it,
    so that a legal output name never gets a temporary name the filesystem refuses."""
    name = os.fsencode(dst.name)
    room = _name_max(dst.parent) - len(f"..{'0' * _PID_DIGITS}.") - 8 - len(os.fsencode(_tmp_suffix(dst))) - _DERIVED
    if len(name) <= room:
        return dst.name
    digest = hashlib.sha256(name).hexdigest()[:12]
    return name[:max(room - 13, 1)].decode("utf-8", "ignore") + "~" + digest  # a cut character dropped


def _prefix(dst: Path) -> str:
    return f".{_stem(dst)}.{os.getpid()}."


def _write_error(dst: Path, e: OSError) -> MdlcodecError:
    return MdlcodecError(f"cannot write {dst}: {e.strerror or first_line(e)}")


def _commit_file(tmp: str, dst: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise MdlcodecError(f"{dst} exists", param="overwrite") from None
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        if dst.exists():  # no hard links on this filesystem: check, then rename
            raise MdlcodecError(f"{dst} exists", param="overwrite") from None
        os.replace(tmp, dst)


def refuse_inputs(dst: Path, inputs: tuple[str | Path, ...]) -> None:
    """MdlcodecError if the existing file ``dst`` is one of ``inputs`` or lies in a folder among them."""
    if not dst.exists():
        return
    here = dst.resolve()
    for src in inputs:
        s = Path(src)
        if not s.exists():
            continue
        if s.is_dir():
            if s.resolve() in here.parents:
                raise MdlcodecError(f"refusing to replace {dst}: the command reads the folder {src} it lies in")
        elif os.path.samefile(s, dst):
            raise MdlcodecError(f"refusing to overwrite the input {src} with the output")


@contextlib.contextmanager
def atomic_output(dst: str | Path, inputs: tuple[str | Path, ...] = (), overwrite: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``dst``; commits it as ``dst`` if the block succeeds.

    Refuses (MdlcodecError), with or without ``overwrite``, to replace any of ``inputs``: a file (the
    same file by any name: a symlink, a hard link) or a folder (a model, a shard folder: no file in it
    is replaced; a new file may be written there). Refuses an existing ``dst`` unless ``overwrite``
    (checked again at the commit, see the module docstring). The file gets the usual permissions
    (0666 less the umask), not mkstemp's 0600.
    """
    dst = Path(dst)
    refuse_inputs(dst, inputs)
    if dst.exists() and not overwrite:
        raise MdlcodecError(f"{dst} exists", param="overwrite")
    if not dst.parent.is_dir():
        raise MdlcodecError(f"output folder {dst.parent} does not exist")
    if dst.is_dir():
        raise MdlcodecError(f"{dst} is a folder, not a file")
    remove_stale(dst)
    try:
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=_prefix(dst), suffix=_tmp_suffix(dst))
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as e:
        raise _write_error(dst, e) from None
    try:
        try:
            yield Path(tmp)
            _commit_file(tmp, dst, overwrite)
        except OSError as e:
            if e.filename is None or str(e.filename) == tmp:
                raise _write_error(dst, e) from None
            raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_folder(dst: str | Path, overwrite: bool = False, inputs: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """Yields a new empty folder beside ``dst``; renames it to ``dst`` if the block succeeds, and
    removes it (and whatever was written in it) if the block fails or is interrupted.

    Refuses (MdlcodecError) an existing ``dst`` unless ``overwrite`` (then the old one is removed only
    after the new one is complete), a ``dst`` that is a file, and a ``dst`` that is or holds any of
    ``inputs`` (checked before and after the block). The folder gets 0777 less the umask."""
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
    remove_stale(dst)
    try:
        tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=_prefix(dst), suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise _write_error(dst, e) from None
    old = None
    try:
        try:
            yield tmp
            check_inputs()
            if dst.exists():
                if not overwrite:
                    raise MdlcodecError(f"{dst} exists", param="overwrite")
                old = Path(tempfile.mkdtemp(dir=dst.parent, prefix=_prefix(dst), suffix=".old"))
                os.replace(dst, old / dst.name)
            try:
                os.rename(tmp, dst)  # onto a folder that holds anything (another run's): ENOTEMPTY
            except OSError as e:
                if old is not None:  # put the old folder back
                    os.replace(old / dst.name, dst)
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise MdlcodecError(f"{dst} exists (written meanwhile by another run)", param="overwrite") from None
                raise
        except OSError as e:
            if e.filename is None:
                raise _write_error(dst, e) from None
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | Path, text: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (never replacing ``inputs``); returns the path."""
    with atomic_output(path, inputs) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def save_figure(fig, path: str | Path, dpi: int | None = None) -> Path:
    """Save a matplotlib Figure as PNG at ``path`` atomically (``dpi``: matplotlib's default if None)."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", **({"dpi": dpi} if dpi is not None else {}))
    return Path(path)
