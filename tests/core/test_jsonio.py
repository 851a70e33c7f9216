"""Issue 19 §7 and §8 in core: the one JSON reader (core/jsonio.py) refuses each hostile input in one
line of the caller's error type before Python's json module can turn it into a traceback, and
core/paths.py refuses what is not a regular file before anything opens it."""

from __future__ import annotations

import os
import re
import time

import pytest

from mdlcodec.core.errors import DataError, MdlcodecError, ModelError
from mdlcodec.core.jsonio import MAX_BYTES, depth, parse_json, read_json, read_json_object
from mdlcodec.core.paths import regular_file
from tests.core.helpers import within

ATTACKS = {  # what -> (bytes, words of the one-line error)
    "5,000-digit integer": (b'{"d_in": ' + b"7" * 5000 + b"}", "integer of 5000 digits"),
    "negative 5,000-digit integer": (b"[-" + b"7" * 5000 + b"]", "integer of 5000 digits"),
    "100,000-deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested 100000 levels deep"),
    "100,000-deep objects": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested 100000 levels deep"),
    "NaN": (b'{"k": NaN}', "NaN is not a JSON number"),
    "Infinity": (b'{"k": -Infinity}', "-Infinity is not a JSON number"),
    "a float beyond range": (b'{"k": 1e999}', "beyond a float's range"),
    "duplicate key": (b'{"d_in": 1, "d_sae": 2, "d_in": 3}', 'key "d_in" appears twice'),
    "duplicate key nested": (b'{"a": {"k": 1, "k": 1}}', 'key "k" appears twice'),
    "bad UTF-8": (b'{"name": "\xff\xfe"}', "not UTF-8 (byte 0xff at offset 10)"),
    "lone surrogate escape": (b'{"name": "\\udc00"}', "lone UTF-16 surrogate"),
    "not JSON": (b"{not json", "not valid JSON"),
    "unterminated string": (b'{"a": "[[[[', "not valid JSON"),
    "empty": (b"", "not valid JSON"),
}


@pytest.mark.parametrize("what", list(ATTACKS))
def test_each_attack_is_one_line_of_the_callers_error(what):
    data, needle = ATTACKS[what]
    for error in (ModelError, DataError):
        with pytest.raises(error) as e:
            parse_json(data, "/m/cfg.json", error)
        msg = str(e.value)
        assert type(e.value) is error and "\n" not in msg and len(msg) < 200, msg
        assert msg.startswith("cannot read /m/cfg.json: ") and needle in msg, msg


def test_valid_json_reads_as_json_module_does():
    data = b'{"a": [1, -2, 3.5, "x[{", "\\"]", "\\\\", "\\ud83d\\ude00", null, true], "b": {"c": {}}, "n": ' \
           + b"9" * 64 + b"}"
    v = parse_json(data, "x")
    assert v["a"] == [1, -2, 3.5, "x[{", '"]', "\\", "\U0001F600", None, True] and v["b"] == {"c": {}}
    assert v["n"] == int("9" * 64)
    assert parse_json(b"[]", "x") == [] and parse_json(b"3", "x") == 3


def test_depth_counts_brackets_outside_strings_only():
    assert depth(b'{"a": 1}') == 1 and depth(b"3") == 0 and depth(b'{"a": [[1]]}') == 3
    assert depth(b'{"a": "[[[[{{{{", "b": "\\"[["}') == 1
    assert depth(b'{"a": "\\\\", "b": [1]}') == 2  # an escaped backslash ends before the quote


def test_max_depth_one_is_one_flat_object():
    assert parse_json(b'{"n": 1, "s": "[{"}', "the header", CodecLike, max_depth=1) == {"n": 1, "s": "[{"}
    with pytest.raises(CodecLike, match=r"not one flat object"):
        parse_json(b'{"n": [1]}', "the header", CodecLike, max_depth=1)
    assert parse_json(b"[" * 64 + b"]" * 64, "x") == parse_json(b"[" * 64 + b"]" * 64, "x", max_depth=64)
    with pytest.raises(MdlcodecError, match="65 levels deep, more than 64"):
        parse_json(b"[" * 65 + b"]" * 65, "x")


class CodecLike(MdlcodecError):
    pass


def test_the_bracket_scan_is_linear_on_escaped_quotes():
    """One quote then a megabyte of escaped quotes: a scan that needs closing quotes restarts at each one."""
    data = b'{"a": "' + b'\\"' * 500_000
    t0 = time.perf_counter()
    with pytest.raises(MdlcodecError, match="not valid JSON"):
        parse_json(data, "x")
    assert time.perf_counter() - t0 < 3


def test_oversized_bytes_and_file_are_refused_before_reading(tmp_path):
    with pytest.raises(DataError, match="more than the limit of 10"):
        parse_json(b"[" + b"1," * 10 + b"1]", "x", DataError, max_bytes=10)
    big = tmp_path / "manifest.json"
    with open(big, "wb") as f:  # sparse: its size is known without writing 16 MiB
        f.truncate(MAX_BYTES + 1)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match=f"{MAX_BYTES + 1} bytes of JSON, more than the limit") as e:
        read_json(big, error=DataError)
    assert time.perf_counter() - t0 < 1 and str(big) in str(e.value)


def test_read_json_object_names_the_file_and_keeps_the_error_type(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text('{"a": 1}')
    assert read_json_object(p, error=ModelError) == {"a": 1}
    p.write_text("[1, 2]")
    with pytest.raises(ModelError, match="does not hold a JSON object"):
        read_json_object(p, error=ModelError)
    assert read_json(p) == [1, 2]
    with pytest.raises(ModelError, match=re.escape(f"{tmp_path / 'nope.json'} is missing")):
        read_json_object(tmp_path / "nope.json", error=ModelError)
    p.write_text("[" + "1" * 100 + "]")
    with pytest.raises(DataError, match=re.escape(f"cannot read the forest {p}: an integer of 100 digits")):
        read_json(p, f"the forest {p}", DataError)


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


@needs_fifo
def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    fifo = tmp_path / "cfg.json"
    os.mkfifo(fifo)
    for read in (read_json, read_json_object):
        with pytest.raises(ModelError) as e:
            within(10, lambda: read(fifo, error=ModelError), [fifo])
        assert str(e.value) == f"{fifo} is a FIFO (named pipe), not a regular file"


@needs_fifo
def test_regular_file_follows_links_and_names_what_is_there(tmp_path):
    real = tmp_path / "real.npy"
    real.write_bytes(b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for name, target in (("to_real", real), ("to_fifo", fifo), ("to_nothing", tmp_path / "gone"),
                         ("to_folder", tmp_path)):
        (tmp_path / name).symlink_to(target)
    assert regular_file(tmp_path / "to_real").st_size == 1
    cases = {"to_fifo": "is a FIFO (named pipe), not a regular file", "to_nothing": "is a symbolic link to a missing file",
             "to_folder": "is a folder, not a regular file", "fifo": "is a FIFO"}
    for name, words in cases.items():
        with pytest.raises(DataError, match=re.escape(words)):
            regular_file(tmp_path / name, error=DataError)
    with pytest.raises(DataError, match=r"^shard x is missing$"):
        regular_file(tmp_path / "x", "shard x", DataError)
    with pytest.raises(DataError, match="Not a directory"):
        regular_file(real / "inside", error=DataError)
    if os.path.exists("/dev/null"):
        with pytest.raises(ModelError, match="a character device"):
            read_json("/dev/null", error=ModelError)
