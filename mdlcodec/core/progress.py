"""Progress messages: library code reports through a callable; only the CLI decides where they go."""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str], None]
"""Takes one line of progress text."""


def quiet(_: str) -> None:
    """The Progress that says nothing."""
