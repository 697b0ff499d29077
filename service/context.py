"""What every use case needs, built once per process (or per test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from labeling.gateway import LabelStudioGateway
from service.runtime import ModelRuntime
from service.settings import Settings

# progress(fraction in [0, 1], message for people)
Progress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    """A progress callback that ignores what it is told."""


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A callback that maps [0, 1] onto [start, end] of `progress`."""
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


@dataclass
class ServiceContext:
    settings: Settings
    guide: Guide
    engine: Engine
    sessions: sessionmaker[Session]
    runtime: ModelRuntime
    gateway: LabelStudioGateway
