"""mdlcodec.core.atomic: an output is written to a temporary file beside its destination and renamed
into place on success; an error leaves neither a temporary file nor a changed destination; inputs
and (when asked) existing files are never overwritten; permissions follow the umask."""

from __future__ import annotations

import os
import stat

import pytest

from mdlcodec.core.atomic import atomic_output
from mdlcodec.core.errors import MdlcodecError


class Boom(Exception):
    pass


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("existing", [False, True])
def test_success_renames_the_temporary_file_into_place(tmp_path, existing):
    dst = tmp_path / "out.npy"
    if existing:
        dst.write_bytes(b"old")  # overwrite=True is the default
    with atomic_output(dst) as tmp:
        assert tmp != dst and tmp.parent == dst.parent and tmp.is_file()  # beside it, so the rename is atomic
        assert dst.read_bytes() == b"old" if existing else not dst.exists()  # nothing at dst until it succeeds
        tmp.write_bytes(b"new")
        inode = tmp.stat().st_ino
    assert dst.read_bytes() == b"new" and dst.stat().st_ino == inode  # renamed, not copied
    assert not tmp.exists() and _names(tmp_path) == ["out.npy"]


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_an_error_leaves_no_temporary_file_and_the_destination_unchanged(tmp_path, existing, error):
    dst = tmp_path / "out.bin"
    if existing:
        dst.write_bytes(b"old")
    with pytest.raises(error):
        with atomic_output(dst) as tmp:
            tmp.write_bytes(b"half written")
            raise error
    assert not tmp.exists()
    assert _names(tmp_path) == (["out.bin"] if existing else [])
    if existing:
        assert dst.read_bytes() == b"old"


def test_refuses_to_overwrite_an_input(tmp_path):
    src = tmp_path / "acts.npy"
    src.write_bytes(b"input")
    os.symlink(src, tmp_path / "link.npy")
    # the same file however it is named: the path itself, another spelling, a symlink to it
    for dst in (src, tmp_path / "." / "acts.npy", tmp_path / "link.npy"):
        with pytest.raises(MdlcodecError, match="input"):
            with atomic_output(dst, inputs=(tmp_path / "other.npy", src)):
                pytest.fail("the block must not run")
        assert src.read_bytes() == b"input" and _names(tmp_path) == ["acts.npy", "link.npy"]
    with atomic_output(tmp_path / "out.npy", inputs=(src,)) as tmp:  # another file: written
        tmp.write_bytes(b"output")
    assert (tmp_path / "out.npy").read_bytes() == b"output" and src.read_bytes() == b"input"


def test_refuses_an_existing_destination_without_overwrite(tmp_path):
    dst = tmp_path / "out.bin"
    dst.write_bytes(b"old")
    with pytest.raises(MdlcodecError, match="exists"):
        with atomic_output(dst, overwrite=False):
            pytest.fail("the block must not run")
    assert dst.read_bytes() == b"old" and _names(tmp_path) == ["out.bin"]
    with atomic_output(tmp_path / "new.bin", overwrite=False) as tmp:  # a new file: written
        tmp.write_bytes(b"new")
    assert (tmp_path / "new.bin").read_bytes() == b"new" and _names(tmp_path) == ["new.bin", "out.bin"]


def test_a_missing_output_folder_is_an_error(tmp_path):
    dst = tmp_path / "nowhere" / "out.bin"
    with pytest.raises(MdlcodecError) as e:
        with atomic_output(dst):
            pytest.fail("the block must not run")
    assert "nowhere" in str(e.value)
    assert _names(tmp_path) == []  # the folder is not created


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o000])
def test_permissions_follow_the_umask(tmp_path, umask):
    before = os.umask(umask)
    try:
        with atomic_output(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"x")
        (tmp_path / "plain.bin").write_bytes(b"x")  # what open() gives under the same umask
    finally:
        os.umask(before)
    mode = stat.S_IMODE((tmp_path / "out.bin").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.bin").stat().st_mode)
