"""Coded decoder rows as bombs (issue 29 §2): a self-contained file's coded rows are refused unless
they are exactly what the writer writes (canonical, as the chunks are), and a section that the
header's fingerprint does not name is refused while memory holds only its symbols."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mdlcodec.codec import decode_file, inspect_file
from mdlcodec.codec.files import decode_range
from mdlcodec.codec.rate.decoder_code import CodedRows
from mdlcodec.core.errors import CodecError
from tests.codec import fuzz_classes


@pytest.fixture(scope="module")
def base():
    return fuzz_classes.coded_base()


@pytest.fixture(scope="module")
def attacks(base):
    return dict(fuzz_classes.coded_rows_attacks(base))


def test_the_coded_base_decodes(base, tmp_path):
    path = tmp_path / "ok.mdlc"
    path.write_bytes(base.data)
    decode_file(path, tmp_path / "ok.npy")
    assert np.array_equal(np.load(tmp_path / "ok.npy"), base.output)
    assert inspect_file(path)["decoder_rows"] == "coded, 8 levels a side"


@pytest.mark.parametrize("name, needle", [
    ("coded rows: an empty word stream", "counts of the coded weights"),
    ("coded rows: counts [2^62 x 4, n] wrapping int64", "W_dec_counts"),
    ("coded rows: 2L levels, scale doubled (the same weights)", "levels up to 8, its scale gives 16"),
    ("coded rows: a row short of its scale's levels", "row 0 decodes to levels up to 7"),
    ("coded rows: a row of scale -0.0", "-0.0"),
    ("coded rows: a word before the stream", "words unread"),
    ("coded rows: a fingerprint the rows do not have", "fingerprint differs"),
])
def test_a_section_the_writer_never_writes_is_refused(attacks, base, tmp_path, name, needle):
    """Each crafted section carries the header fingerprint of what it decodes to (the doubled levels
    give the very same weights), so only the canonical checks can refuse it; every path that reads
    the file's own model does."""
    path = tmp_path / "crafted.mdlc"
    path.write_bytes(attacks[name])
    for call in (lambda: decode_file(path, tmp_path / "out.npy"), lambda: inspect_file(path),
                 lambda: decode_range(path, 3, 7)):
        with pytest.raises(CodecError, match=needle):
            call()
    assert not (tmp_path / "out.npy").exists()


def test_counts_that_wrap_int64_are_refused_before_decoding():
    rows, _ = CodedRows.encode(np.eye(4, 6, dtype=np.float32), 2)
    a = rows.to_arrays()
    a["W_dec_counts"] = np.array([2**62] * 4 + [24], np.int64)  # sums to 24 in int64
    assert int(a["W_dec_counts"].sum()) == 24
    with pytest.raises(ValueError, match="W_dec_counts"):
        CodedRows.from_arrays(a, 6)


def test_a_section_of_another_fingerprint_is_refused_holding_only_its_symbols(tmp_path):
    """2**23 canonical coded weights (32 MiB of float32 rows) in 120 KB under a header naming another
    decoder: refused after the symbols are decoded and hashed, before the rows are built (before:
    the rows, their integers and temporaries, 128 MiB traced)."""
    path = tmp_path / "bomb.mdlc"
    path.write_bytes(fuzz_classes.coded_rows_bomb(1 << 11, 1 << 12))
    assert path.stat().st_size < 200_000
    for call in (lambda: inspect_file(path), lambda: decode_file(path, tmp_path / "out.npy")):
        tracemalloc.start()
        try:
            with pytest.raises(CodecError, match="fingerprint differs"):
                call()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        assert peak < 32, f"{peak:.0f} MiB traced for 16 MiB of symbols"


def test_the_tables_fingerprint_is_checked_before_the_rows_are_decoded(base, tmp_path, monkeypatch):
    from tests.codec import fuzz

    p = fuzz.parse(base.data)
    p.set_header(entropy_model_fingerprint="0" * 32)
    path = tmp_path / "tables.mdlc"
    path.write_bytes(fuzz.build(p))

    def never(*a, **k):
        raise AssertionError("the rows were decoded")
    monkeypatch.setattr(CodedRows, "decode", never)
    with pytest.raises(CodecError, match="codec tables fingerprint differs"):
        inspect_file(path)
