"""Long work runs as a job: one worker thread, status and percent kept in the database."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.core.errors import describe_exception
from service.core.orm import utcnow
from service.core.progress import Progress
from service.jobs.tables import Job

log = logging.getLogger(__name__)

JobFunction = Callable[[Progress], dict[str, Any]]


class JobRunner:
    """Runs submitted jobs one at a time, in submission order."""

    def __init__(self, sessions: sessionmaker[Session], *, min_update_interval_s: float = 0.25):
        self._sessions = sessions
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="activelabel-job")
        self._interval = min_update_interval_s
        self._mark_interrupted()

    def _mark_interrupted(self) -> None:
        """Jobs that were running when the last process stopped will never finish: say so."""
        with self._sessions() as session:
            session.execute(
                update(Job)
                .where(Job.done.is_(False))
                .values(
                    status="failed",
                    done=True,
                    error_code="interrupted",
                    error_message="the service stopped before this job finished",
                    updated_at=utcnow(),
                )
            )
            session.commit()

    def submit(self, kind: str, params: dict[str, Any], fn: JobFunction) -> str:
        job_id = str(uuid.uuid4())
        with self._sessions() as session:
            session.add(Job(id=job_id, kind=kind, params=params, message="queued"))
            session.commit()
        self._pool.submit(self._run, job_id, fn)
        return job_id

    def _run(self, job_id: str, fn: JobFunction) -> None:
        self._set(job_id, status="running", message="started")
        last = 0.0

        def progress(fraction: float, message: str) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= self._interval or fraction >= 1.0:
                last = now
                try:
                    self._set(job_id, progress=max(0.0, min(1.0, fraction)), message=message)
                except OperationalError:  # a busy database delays a progress note, not the job
                    log.warning("job %s: progress not recorded (database busy)", job_id)

        try:
            result = fn(progress)
        except Exception as err:  # every failure is recorded on the job, never lost
            code, message = describe_exception(err)
            log.exception("job %s failed", job_id)
            self._set(job_id, status="failed", done=True, error_code=code, error_message=message)
            return
        self._set(
            job_id, status="succeeded", done=True, progress=1.0, result=result, message="done"
        )

    def _set(self, job_id: str, **values: Any) -> None:
        with self._sessions() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values)
            )
            session.commit()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
