"""The one check of arrays read from untrusted bytes (a file's model section, a tables file): present,
of the stated dtype and shape, before any arithmetic touches them; and the one check that a result
held in memory fits it (``check_memory``)."""

from __future__ import annotations

import numpy as np


def take(arrays: dict[str, np.ndarray], name: str, dtype, shape: tuple) -> np.ndarray:
    """arrays[name] as a C-contiguous array, checked: present, of exactly ``dtype``, and of ``shape``
    (an entry None: any length). ValueError naming the array otherwise."""
    if name not in arrays:
        raise ValueError(f"{name} is missing")
    a = np.asarray(arrays[name])
    if a.dtype != np.dtype(dtype):
        raise ValueError(f"{name} is {a.dtype}, expected {np.dtype(dtype)}")
    if a.ndim != len(shape) or any(want is not None and got != want for got, want in zip(a.shape, shape)):
        want = "[" + ", ".join("n" if w is None else str(w) for w in shape) + "]"
        raise ValueError(f"{name} has shape {list(a.shape)}, expected {want}")
    return np.ascontiguousarray(a)


def check_keys(arrays: dict[str, np.ndarray], required: set[str], optional: set[str] = frozenset()) -> None:
    """ValueError unless the keys of ``arrays`` are ``required`` plus any of ``optional``."""
    missing, unknown = sorted(required - set(arrays)), sorted(set(arrays) - required - set(optional))
    if missing:
        raise ValueError(f"{', '.join(missing)} missing")
    if unknown:
        raise ValueError(f"unknown array(s) {', '.join(unknown[:5])}")


def check_memory(nbytes: int, what: str) -> None:
    """CodecError if a result held in memory, ``nbytes`` as a file claims it, exceeds the memory this
    machine has free (Linux, macOS; elsewhere unchecked): refused before anything is decoded."""
    import os

    from mdlcodec.core.errors import CodecError

    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return
    if nbytes > free:
        raise CodecError(f"{what} would take {nbytes:,} bytes of memory and {free:,} are free: decode to a "
                         "file (decode_file), or fewer rows")
