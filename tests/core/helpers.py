"""Test helpers of the core layer, shared with the layers above."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest


# 0 -> 1 -> 2 -> 3 (a chain), 4 -> {5, 6}, 7.. roots
PARENTS = np.array([-1, 0, 1, 2, -1, 4, 4] + [-1] * 9, dtype=np.int64)


def within(seconds: float, fn, fifos=()):
    """fn() run in a thread, its value returned or its exception raised here; the test fails, after
    unblocking any reader of the fifos (a writer that closes at once: the reader gets EOF), if it
    is still running after ``seconds`` (a read that blocks on a FIFO fails instead of hanging the suite)."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        for f in fifos:
            try:
                os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(5)
        pytest.fail(f"still running after {seconds} s: blocked on a FIFO?")
    if "error" in box:
        raise box["error"]
    return box["value"]
