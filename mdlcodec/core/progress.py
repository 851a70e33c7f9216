"""Progress reporting. Two kinds, one module:

- ``Progress``: a callable taking one line of text, for stages of a pipeline (selection, bench);
  library code reports through it and the CLI decides where the lines go.
- ``ProgressBar``: the one reporter for long loops of counted steps (training). On a terminal it is
  a tqdm bar; when the stream is a file or a pipe it writes at most one plain line every
  ``PLAIN_INTERVAL_S`` seconds with the same figures (step/total, rate, the loop's own figures such
  as the loss) and a final line, instead of a line per step.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

Progress = Callable[[str], None]
"""Takes one line of progress text."""

PLAIN_INTERVAL_S = 5.0
"""Least seconds between two plain progress lines (stream not a terminal)."""


def quiet(_: str) -> None:
    """The Progress that says nothing."""


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """Reports a loop of ``total`` steps on ``stream`` (default: sys.stderr when created).

    ``update(n)`` after each n steps (``total`` 0: not known beforehand, the count is shown alone);
    ``set_figures(loss="0.12", ...)`` replaces the figures shown beside the count (strings, formatted
    by the caller); ``close()`` (or leaving a ``with`` block) ends it. ``enabled=False`` reports
    nothing. On a terminal (``terminal=None``: ask the stream) a tqdm bar that disappears when
    closed; otherwise plain lines, at most one every ``interval`` seconds of ``clock``, then one
    final line."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, stream: TextIO | None = None,
                 terminal: bool | None = None, interval: float = PLAIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, unit: str = "steps") -> None:
        self.total, self.desc, self.enabled, self.unit = int(total), desc, enabled, unit
        self.stream = sys.stderr if stream is None else stream
        self.interval, self.clock = interval, clock
        self.n, self.figures, self.closed = 0, {}, False
        self._bar = None
        if not enabled:
            return
        if _is_terminal(self.stream) if terminal is None else terminal:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total or None, desc=desc, leave=False, file=self.stream, unit=unit)
        self._t0 = self._last = clock()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = self.clock()
        if now - self._last >= self.interval and (self.n < self.total or self.total <= 0):
            self._last = now
            self._write(self._line(now))

    def set_figures(self, **figures: str) -> None:
        if not self.enabled:
            return
        self.figures = figures
        if self._bar is not None:
            self._bar.set_postfix(figures, refresh=False)

    def close(self, ok: bool = True) -> None:
        """End the report: the final line, or (``ok`` False: the loop failed) only the bar removed."""
        if not self.enabled or self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
            return
        if ok:
            self._write(self._line(self.clock(), final=True))

    def _line(self, now: float, final: bool = False) -> str:
        elapsed = now - self._t0
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total > 0 else ""
        rate = f"{self.n / elapsed:.4g} {self.unit}/s" if elapsed > 0 else f"- {self.unit}/s"
        count = f"{self.n}/{self.total}" if self.total > 0 else f"{self.n}"
        head = f"{self.desc}: {'done, ' if final else ''}{count} {self.unit}{pct}"
        timing = f"{elapsed:.1f} s, {rate}" if final else f"{rate}, {elapsed:.0f} s"
        figs = "".join(f", {k} {v}" for k, v in self.figures.items())
        return f"{head}, {timing}{figs}"

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not stop the work being reported
            pass
