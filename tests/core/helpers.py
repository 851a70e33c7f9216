"""Test helpers of the core layer, shared with the layers above."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest


# 0 -> 1 -> 2 -> 3 (a chain), 4 -> {5, 6}, 7.. roots
PARENTS = np.array([-1, 0, 1, 2, -1, 4, 4] + [-1] * 9, dtype=np.int64)


_WATCHDOG = """
import os, sys, time
time.sleep(float(sys.argv[1]))
end = time.monotonic() + 10
while time.monotonic() < end:  # a writer that closes at once: a reader blocked in open() gets EOF
    for f in sys.argv[2:]:
        try:
            os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    time.sleep(0.05)
"""


def within(seconds: float, fn, fifos=()):
    """fn() run in a thread, its value returned or its exception raised here; the test fails if it
    runs for ``seconds`` or more. A reader blocked on one of the ``fifos`` is unblocked then by a
    watchdog process that opens them for writing (a native reader such as safetensors' blocks in
    open() holding the GIL, so no thread of this process could), and the test fails instead of
    hanging the suite."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            box["error"] = e

    watchdog = (subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(seconds), *map(str, fifos)])
                if fifos else None)
    t0 = time.monotonic()
    t = threading.Thread(target=target, daemon=True)
    try:
        t.start()
        t.join(seconds + 10)
    finally:
        elapsed = time.monotonic() - t0
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
    if t.is_alive() or elapsed >= seconds:
        pytest.fail(f"still running after {seconds} s: blocked on a FIFO?")
    if "error" in box:
        raise box["error"]
    return box["value"]
