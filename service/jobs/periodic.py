"""Periodic kinds: enqueue one when its interval has passed since the last of its kind."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.orm import utcnow
from service.core.settings import Settings
from service.jobs.queue import enqueue
from service.jobs.registry import JobSpec
from service.jobs.tables import Job, as_utc
from service.jobs.writes import Writer


class PeriodicScheduler:
    """Enqueues the periodic kinds of a registry when due, across processes.

    Due is read from the database (the newest job of the kind and scope), so several
    processes agree; dedupe keeps at most one queued. Between checks, each kind waits
    in-process until its next due time.
    """

    def __init__(self, registry: Mapping[str, JobSpec], settings: Settings, writer: Writer):
        self.settings = settings
        self.writer = writer
        self.specs = list(registry.values())
        self._next: dict[str, float] = {}

    def shortest_interval_s(self) -> float | None:
        """The shortest interval of the periodic kinds, or None when there are none."""
        intervals = [spec.interval(self.settings) for spec in self.specs]
        return min((every for every in intervals if every is not None), default=None)

    def enqueue_due(self) -> None:
        """Enqueue every periodic kind whose interval has passed (read first: only a due kind
        takes the write lock, and the write unit checks again under it)."""
        for spec in self.specs:
            every = spec.interval(self.settings)
            if every is None or time.monotonic() < self._next.get(spec.kind, 0.0):
                continue
            kind, scope = spec.kind, spec.scope_for(self.settings)
            last = self.writer.read(lambda s, k=kind, sc=scope: last_created(s, k, sc))
            if _due(last, every):
                last = self.writer.write(
                    lambda s, k=kind, sc=scope, e=every: _enqueue_if_due(s, k, sc, e)
                )
            assert last is not None
            wait = (last + timedelta(seconds=every) - utcnow()).total_seconds()
            self._next[spec.kind] = time.monotonic() + max(wait, 0.0)


def last_created(session: Session, kind: str, scope: str) -> datetime | None:
    """When the newest job of `kind` in `scope` was created, if any."""
    last = session.scalar(
        select(func.max(Job.created_at)).where(Job.kind == kind, Job.scope == scope)
    )
    return None if last is None else as_utc(last)


def _due(last: datetime | None, every: float) -> bool:
    return last is None or last <= utcnow() - timedelta(seconds=every)


def _enqueue_if_due(session: Session, kind: str, scope: str, every: float) -> datetime:
    last = last_created(session, kind, scope)
    if _due(last, every):
        enqueue(session, kind, {}, scope=scope)
        return utcnow()
    assert last is not None
    return last
