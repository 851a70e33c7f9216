"""Issue 10, friction 7: one progress reporter. On a terminal a tqdm bar; written to a file or a pipe,
at most one plain line every few seconds and a final line, not a line per step."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from mdlcodec.core.progress import PLAIN_INTERVAL_S, ProgressBar
from mdlcodec.models.io import CFG_FILE


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_at_most_one_per_interval_then_a_final_line():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(1000, "train w24", stream=out, clock=clock)
    for i in range(1000):  # 0.1 s a step: 100 s in all
        clock.t += 0.1
        bar.update()
        if i % 10 == 0:
            bar.set_figures(loss=f"{1 / (i + 1):.3g}")
    bar.close()
    bar.close()  # a second close writes nothing
    lines = out.getvalue().splitlines()
    assert 100 / PLAIN_INTERVAL_S - 2 <= len(lines) - 1 <= 100 / PLAIN_INTERVAL_S  # progress lines, then the final
    assert lines[0].startswith("train w24: ") and "/1000 steps" in lines[0] and "steps/s" in lines[0]
    assert "loss" in lines[0]
    assert lines[-1].startswith("train w24: done, 1000/1000 steps (100%), 100.0 s, 10 steps/s, loss ")


def test_a_short_loop_writes_only_the_final_line():
    clock, out = FakeClock(), io.StringIO()
    with ProgressBar(50, "fit", stream=out, clock=clock) as bar:
        for _ in range(50):
            clock.t += 0.01
            bar.update()
    assert out.getvalue().splitlines() == ["fit: done, 50/50 steps (100%), 0.5 s, 100 steps/s"]


def test_disabled_reports_nothing_and_a_terminal_gets_a_bar():
    out = io.StringIO()
    with ProgressBar(10, "quiet", stream=out, enabled=False) as bar:
        bar.update(10)
        bar.set_figures(loss="1")
    assert out.getvalue() == ""
    term = FakeTerminal()
    with ProgressBar(10, "bar", stream=term) as bar:
        for _ in range(10):
            bar.update()
    assert "bar" in term.getvalue() and "\r" in term.getvalue()  # tqdm redraws one line in place


def test_train_to_a_pipe_writes_a_few_progress_lines(tmp_path):
    """A 40-epoch run wrote 7,520 progress lines to a file; now at most one every few seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "mdlcodec", "train", "toy:n=2000,n_features=24,d=12,l0=2",
                        "--width", "24", "--k", "2", "--epochs", "40", "-o", str(tmp_path / "model")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    progress = [line for line in r.stderr.splitlines() if line.startswith("train batchtopk w24")]
    assert 1 <= len(progress) < 20, r.stderr
    assert "\r" not in r.stderr  # no bar redrawn in place
    assert progress[-1].startswith("train batchtopk w24: done, ") and "loss" in progress[-1]
    assert (tmp_path / "model" / CFG_FILE).exists()
