"""`decode --latents` leaves no spill files (issue 29 §7): under a file-size limit (the write calls
of a full disk) and on every terminating signal, each handled as SIGTERM is."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.codec import fuzz

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A valid self-contained file of 48 chunks of 2**20 empty rows (400 MB of row pointers, 3 KB):
    seconds of decoding, its spill files growing all the while."""
    path = tmp_path_factory.mktemp("spill") / "slow.mdlc"
    path.write_bytes(fuzz.bomb(fuzz.free_codec(8, 2, False), 1 << 20, 48))
    return path


def _decode(src: Path, out: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mdlcodec", "decode", str(src), "-o", str(out), "--latents"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, **kw)


@pytest.mark.parametrize("limit", [100, 20_000, 1_000_000])
def test_a_file_size_limit_leaves_no_spill_file(tmp_path, limit):
    """RLIMIT_FSIZE (the write calls of a full disk: EFBIG) while 2,000 chunks of 16 rows of 16 latents
    are decoded: a limit below the row pointers' 256 KB is met as they are reserved, a larger one by a
    buffered write whose flush fails again as its spill file is closed (before: that close raised in
    the cleanup and left three or four .tmp.npz.* spill files). One line naming the output; nothing left."""
    src = tmp_path / "small.mdlc"
    src.write_bytes(fuzz.bomb(fuzz.free_codec(8, 16, True), 16, 2000))
    out = tmp_path / "out" / "z.npz"
    out.parent.mkdir()
    p = _decode(src, out, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 1 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "z.npz" in lines[0], err
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGUSR1, signal.SIGALRM])
def test_a_terminating_signal_leaves_no_spill_file(slow, tmp_path, sig):
    out = tmp_path / "out" / "z.npz"
    out.parent.mkdir()
    p = _decode(slow, out)
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not any(".npz.indptr" in q.name for q in out.parent.iterdir()):
        time.sleep(0.02)
    if p.poll() is not None:
        pytest.skip("decode finished before it could be interrupted")
    time.sleep(0.2)
    p.send_signal(sig)
    _, err = p.communicate(timeout=300)
    if p.returncode == 0:
        pytest.skip("decode finished before the signal arrived")
    assert p.returncode == 128 + sig, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert list(out.parent.iterdir()) == [], "a spill or temporary file was left behind"
