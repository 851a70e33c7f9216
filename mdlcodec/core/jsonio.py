"""The one reader of JSON that came from outside (issue 19 §7): a model's mdlcodec_sae.json, a peer's
config.json, a shard folder's manifest.json, a forest file, the sweep's cache entries.

Python's json module turns hostile input into tracebacks or worse: a 5,000-digit integer is a
ValueError (the int-string limit), a 100,000-deep list a RecursionError, ``NaN`` and ``1e999``
become floats no config means, a repeated key silently keeps its last value, and a file of any
size is read whole. ``parse_json`` refuses each of these before it matters, as one line of the
caller's error type naming the file and the problem ("cannot read PATH: ..."):

- more than ``max_bytes`` bytes (a file's size is checked by stat, and at most max_bytes + 1 bytes
  are read, before anything is parsed);
- nesting deeper than ``max_depth`` (counted by a scan of the brackets outside strings, before
  json.loads; 1 allows one flat object or list);
- an integer of more than ``MAX_INT_DIGITS`` digits, ``NaN``/``Infinity``/``-Infinity``, a number
  beyond a float's range, a key twice in one object;
- bytes that are not UTF-8, and escapes that are not text (a lone UTF-16 surrogate, ``"\\ud800"``);
- and, of course, anything that is not JSON.

``read_json`` and ``read_json_object`` read a file, first checked to be a regular file
(``core/paths.py``: a FIFO would block the read for ever).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from mdlcodec.core.errors import MdlcodecError
from mdlcodec.core.paths import kind, regular_file

MAX_BYTES = 16 << 20
MAX_DEPTH = 64
MAX_INT_DIGITS = 64

# A string, or an unterminated one to the end: each match is linear and none overlap, so the scan is
# linear (closing quotes required, a file of escaped quotes after one quote would take quadratic time).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class _Refused(Exception):
    """What parse_json's hooks refuse; its message is the problem."""


def depth(data: bytes) -> int:
    """How deep the brackets of JSON bytes nest, strings skipped (0 for a scalar, 1 for a flat object)."""
    step = _STEP[np.frombuffer(_STRING.sub(b'""', data), np.uint8)]
    step = step[step != 0]
    return int(np.cumsum(step, dtype=np.int64).max(initial=0))


def _int(s: str) -> int:
    digits = len(s) - s.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
    return int(s)


def _float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise _Refused(f"the number {s[:24]}{'...' if len(s) > 24 else ''} is beyond a float's range")
    return v


def _constant(name: str):
    raise _Refused(f"{name} is not a JSON number")


def _unique(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        shown = json.dumps(twice)
        raise _Refused(f"the key {shown if len(shown) <= 40 else shown[:37] + '...'} appears twice in one object")
    return out


def parse_json(data: bytes, what: str, error: type[MdlcodecError] = MdlcodecError, max_bytes: int = MAX_BYTES,
               max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in ``data``; ``error`` (one line "cannot read <what>: <problem>") for anything
    the module docstring lists: too large, nested deeper than max_depth, an overlong integer, NaN or
    Infinity, a key twice, not UTF-8, not JSON."""

    def refuse(problem: str) -> MdlcodecError:
        return error(f"cannot read {what}: {problem}")

    if len(data) > max_bytes:
        raise refuse(f"{len(data)} bytes of JSON, more than the limit of {max_bytes}")
    deep = depth(data)
    if deep > max_depth:
        flat = " (not one flat object)" if max_depth == 1 else ""
        raise refuse(f"JSON nested {deep} levels deep, more than {max_depth}{flat}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise refuse(f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant,
                           object_pairs_hook=_unique)
    except _Refused as e:
        raise refuse(str(e)) from None
    except json.JSONDecodeError as e:
        raise refuse(f"not valid JSON ({e.msg}: line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # not expected past the checks above; still one line
        raise refuse(f"not valid JSON ({type(e).__name__})") from None
    if _SURROGATE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise refuse("a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), not text") from None
    return value


def read_json(path: str | Path, what: str | None = None, error: type[MdlcodecError] = MdlcodecError,
              max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in the file ``path`` (``what`` names it in errors, the path by default): a
    regular file (symbolic links followed) of at most max_bytes, parsed by ``parse_json``; ``error``
    (one line) if it is missing, not a regular file, unreadable, too large or not acceptable JSON."""
    what = str(path) if what is None else what
    st = regular_file(path, what, error)
    if st.st_size > max_bytes:
        raise error(f"cannot read {what}: {st.st_size} bytes of JSON, more than the limit of {max_bytes}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):  # swapped since the stat above
                raise error(f"{what} is {kind(mode)}, not a regular file")
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"cannot read {what}: {e.strerror or e}") from None
    return parse_json(data, what, error, max_bytes, max_depth)


def read_json_object(path: str | Path, what: str | None = None, error: type[MdlcodecError] = MdlcodecError,
                     max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> dict:
    """``read_json`` of a file that must hold a JSON object; ``error`` "<what> does not hold a JSON object" otherwise."""
    what = str(path) if what is None else what
    value = read_json(path, what, error, max_bytes, max_depth)
    if not isinstance(value, dict):
        raise error(f"{what} does not hold a JSON object")
    return value
