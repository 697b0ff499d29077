"""Progress callbacks: how long work tells how far it has got."""

from __future__ import annotations

from collections.abc import Callable

# progress(fraction in [0, 1], message for people)
Progress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    """A progress callback that ignores what it is told."""


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A callback that maps [0, 1] onto [start, end] of `progress`."""
    return lambda fraction, message: progress(start + (end - start) * fraction, message)
