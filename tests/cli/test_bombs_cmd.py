"""Decompression bombs by row count at the command line (issue 29 §5): `decode` and `info --decode`
refuse, in one line naming the flag that allows it, a file whose rows would be more than
MAX_EXPANSION times its size and over 1 GiB, before writing anything."""

from __future__ import annotations

from tests.cli.helpers import one_line_error, run
from tests.codec import fuzz_classes


def test_row_bombs_are_one_line_naming_allow_expansion(tmp_path):
    (_, wide), (_, many) = fuzz_classes.row_bombs()
    (tmp_path / "wide.mdlc").write_bytes(wide)
    (tmp_path / "many.mdlc").write_bytes(many)
    for args in (("decode", tmp_path / "wide.mdlc", "-o", tmp_path / "out.npy"),
                 ("decode", tmp_path / "many.mdlc", "-o", tmp_path / "out.npz", "--latents"),
                 ("info", tmp_path / "many.mdlc", "--decode")):
        one_line_error(run(*args), "--allow-expansion")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.mdlc", "wide.mdlc"]
    r = run("decode", tmp_path / "wide.mdlc", "-o", tmp_path / "part.npy", "--rows", "0:64")  # 2 MiB: no bomb
    assert r.exit_code == 0, r.output
    r = run("info", tmp_path / "many.mdlc")  # sizes from the framing alone: nothing decoded, nothing refused
    assert r.exit_code == 0 and "419430400 samples" in r.output, r.output
