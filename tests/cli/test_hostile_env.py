"""Hostile environments (issue 19 §3 to §5): a parent killed outright, two runs writing one output,
and a disk that refuses writes. Each runs the real command in a subprocess, as a user's shell or a
job scheduler would, and checks what a caller sees: the pipes closed, no process left, exactly one of
two writers committed, one line naming the path, and nothing left beside the output."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli.helpers import one_line_error, run

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")]

CMD = [sys.executable, "-m", "mdlcodec"]


@pytest.fixture(scope="module")
def big(toy_model_dir, tmp_path_factory):
    """(model, a .npy of 1,000,000 toy rows: several seconds to encode on two workers)."""
    model, ds = toy_model_dir
    root = tmp_path_factory.mktemp("hostile")
    x = np.asarray(ds.test, np.float32)
    np.save(root / "big.npy", np.tile(x, (-(-1_000_000 // len(x)), 1))[:1_000_000])
    return model, root / "big.npy"


def _children() -> dict[int, int]:
    """{pid: parent pid} of every process."""
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                out[int(p.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def test_kill_9_of_encode_with_workers_leaves_no_process_and_closes_the_callers_pipes(big, tmp_path):
    model, x = big
    out = tmp_path / "out.mdlc"
    p = subprocess.Popen([*CMD, "encode", x, "-m", model, "-o", out, "--workers", "2", "--chunk-size", "500"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    tree: set[int] = set()
    while time.time() < deadline and p.poll() is None:  # until both workers code chunks
        tree = _descendants(p.pid)
        if len(tree) >= 4 and _leftovers(tmp_path, "out.mdlc"):  # resource tracker, forkserver, 2 workers
            break
        time.sleep(0.1)
    assert p.poll() is None and len(tree) >= 4, "the run ended before it could be killed: give it more rows"
    tree = _descendants(p.pid)
    p.kill()
    t0 = time.time()
    p.communicate(timeout=20)  # a caller reading the command's output gets EOF: nothing holds its pipes
    left = tree
    while left and time.time() - t0 < 10:
        left = _alive(tree)
        time.sleep(0.1)
    assert not left, f"still running 10 s after their parent was killed: {sorted(left)}"
    assert _leftovers(tmp_path, "out.mdlc"), "the killed run had a temporary file to leave"
    small = tmp_path / "small.npy"
    np.save(small, np.load(x, mmap_mode="r")[:100])
    r = run("encode", small, "-m", model, "-o", out)  # a later run of the same output removes it
    assert r.exit_code == 0, r.output
    assert _leftovers(tmp_path, "out.mdlc") == [] and out.exists()


def test_two_encodes_of_one_output_one_succeeds_the_other_says_it_exists(big, tmp_path):
    model, x = big
    out = tmp_path / "out.mdlc"
    args = [*CMD, "encode", x, "-m", model, "-o", out, "--chunk-size", "4096"]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [r.communicate(timeout=300) + (r.returncode,) for r in runs]
    codes = sorted(rc for _, _, rc in results)
    assert codes == [0, 1], results
    err = next(e for _, e, rc in results if rc == 1).strip().splitlines()
    assert len(err) == 1 and "exists" in err[0] and str(out) in err[0], err
    assert _leftovers(tmp_path, "out.mdlc") == []


def _file_size_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes fail, EFBIG
    return apply


@pytest.fixture(scope="module")
def small(toy_model_dir, tmp_path_factory):
    model, ds = toy_model_dir
    root = tmp_path_factory.mktemp("small")
    np.save(root / "x.npy", np.asarray(ds.test, np.float32))
    r = run("encode", root / "x.npy", "-m", model, "-o", root / "x.mdlc", "--embed-model")
    assert r.exit_code == 0, r.output
    return model, root


@pytest.mark.parametrize("what", ["encode", "encode --workers 2", "decode", "decode --latents", "train"])
def test_a_write_the_filesystem_refuses_is_one_line_naming_the_output_and_leaves_nothing(small, tmp_path, what):
    """A file-size limit makes the kernel refuse writes past 500 bytes (EFBIG), as a full disk (ENOSPC)
    refuses them: the same OSError from the same write calls."""
    model, root = small
    outs = {"encode": tmp_path / "o.mdlc", "decode": tmp_path / "o.npy", "train": tmp_path / "sae"}
    cmd = {"encode": ["encode", root / "x.npy", "-m", model, "-o", outs["encode"]],
           "decode": ["decode", root / "x.mdlc", "-o", outs["decode"]],
           "train": ["train", "toy:n=3000,n_features=24,d=12,l0=2", "--arch", "topk", "--width", "512", "--k", "2",
                     "--epochs", "1", "-o", outs["train"]]}[what.split()[0]] + what.split()[1:]
    r = subprocess.run([*CMD, *map(str, cmd)], capture_output=True, text=True, timeout=300,
                       preexec_fn=_file_size_limit(500))
    lines = r.stderr.strip().splitlines()  # train reports its progress first
    assert r.returncode == 1 and "Traceback" not in r.stderr and lines[-1].startswith("error:"), r.stderr
    assert [ln for ln in lines if "error" in ln.lower()] == lines[-1:], r.stderr
    assert "File too large" in lines[-1] and outs[what.split()[0]].name in lines[-1], lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "something was left behind"


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO])
def test_every_oserror_of_a_write_is_one_line_naming_the_output(small, tmp_path, monkeypatch, err):
    """The errors a test machine's root user cannot provoke for real, raised where the bytes are written."""
    model, root = small
    from mdlcodec.codec.format import container

    def refuse(self, data):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(container.Writer, "_write", refuse)
    out = tmp_path / "o.mdlc"
    line = one_line_error(run("encode", root / "x.npy", "-m", model, "-o", out), os.strerror(err))
    assert str(out) in line and sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES])
def test_a_folder_one_may_not_write_in_is_one_line_naming_the_output(small, tmp_path, monkeypatch, err):
    model, root = small
    import tempfile

    def refuse(*a, **k):
        raise OSError(err, os.strerror(err), str(tmp_path / ".o.npy.1.x.tmp.npy"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out = tmp_path / "o.npy"
    line = one_line_error(run("decode", root / "x.mdlc", "-o", out), os.strerror(err))
    assert str(out) in line and ".tmp" not in line
