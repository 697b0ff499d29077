"""The worker's database writes: one short transaction each, retried while the database is busy."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


class Writer:
    """Runs an action in its own committed transaction; `retry_s` bounds the busy retries."""

    def __init__(self, sessions: sessionmaker[Session], retry_s: float) -> None:
        self.sessions = sessions
        self.retry_s = retry_s

    def write(self, action: Callable[[Session], T], *, retry_s: float | None = None) -> T:
        """Run `action` and commit, retried while the database is busy; then re-raise."""
        limit = self.retry_s if retry_s is None else retry_s
        deadline, delay = time.monotonic() + limit, 0.05
        while True:
            try:
                with self.sessions() as session:
                    value = action(session)
                    session.commit()
                    return value
            except OperationalError as err:
                if time.monotonic() >= deadline:
                    raise
                log.warning("jobs: database busy (%s); retrying", err.orig)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def best_effort(self, action: Callable[[Session], T], *, default: T) -> T:
        """A write that may be skipped (a progress note): a busy database delays it, no more."""
        try:
            return self.write(action, retry_s=0.0)
        except OperationalError:
            log.warning("jobs: progress not recorded (database busy)")
            return default
