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
        """Enqueue every periodic kind whose interval has passed."""
        for spec in self.specs:
            every = spec.interval(self.settings)
            if every is None or time.monotonic() < self._next.get(spec.kind, 0.0):
                continue
            scope = spec.scope_for(self.settings)

            def due(
                session: Session, kind: str = spec.kind, every: float = every, scope: str = scope
            ) -> datetime:
                now = utcnow()
                last = session.scalar(
                    select(func.max(Job.created_at)).where(Job.kind == kind, Job.scope == scope)
                )
                if last is None or as_utc(last) <= now - timedelta(seconds=every):
                    enqueue(session, kind, {}, scope=scope)
                    return now
                return as_utc(last)

            last = self.writer.write(due)
            wait = (last + timedelta(seconds=every) - utcnow()).total_seconds()
            self._next[spec.kind] = time.monotonic() + max(wait, 0.0)
