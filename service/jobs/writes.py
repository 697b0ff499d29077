"""The worker's database writes: one short unit each, retried with backoff on a busy database."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from service.core.errors import is_busy

log = logging.getLogger(__name__)
T = TypeVar("T")
Opener = Callable[[], Session]


class Writer:
    """Runs an action in a unit of its own and commits; `retry_s` bounds the busy retries.

    `units` opens write units (they take the write lock when they begin, see
    `service.core.db`); `reads` opens read-only sessions, which never wait for it.
    """

    def __init__(self, units: Opener, reads: Opener, retry_s: float) -> None:
        self.units = units
        self.reads = reads
        self.retry_s = retry_s

    def write(self, action: Callable[[Session], T], *, retry_s: float | None = None) -> T:
        """Run `action` and commit, retried while the database is busy; then re-raise."""
        return self._retried(self.units, action, self.retry_s if retry_s is None else retry_s)

    def read(self, action: Callable[[Session], T]) -> T:
        """Run `action` in a read-only session (no lock taken, so no wait)."""
        with self.reads() as session:
            return action(session)

    def best_effort(self, action: Callable[[Session], T], *, default: T, units: Opener) -> T:
        """A write that may wait a moment, then be skipped (a progress note), in `units`."""
        try:
            return self._retried(units, action, 0.0)
        except Exception as err:
            if not is_busy(err):
                raise
            log.info("jobs: progress note deferred (database busy)")
            return default

    def _retried(self, units: Opener, action: Callable[[Session], T], limit: float) -> T:
        deadline, delay = time.monotonic() + limit, 0.05
        while True:
            try:
                with units() as session:
                    value = action(session)
                    session.commit()
                    return value
            except Exception as err:
                if not is_busy(err) or time.monotonic() >= deadline:
                    raise
                log.warning("jobs: database busy (%s); retrying", getattr(err, "orig", err))
                time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
                delay = min(delay * 2, 1.0)
