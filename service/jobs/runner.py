"""Running one claimed job: its handler, the calls it makes back, and its recorded outcome.

Every outcome is written with a guarded update (see `leases.release`), retried with backoff
while the database is busy, for as long as this worker holds the lease (the heartbeat goes
on meanwhile): a job that finished is recorded as finished. Only a stopping service gives up,
and then the lease expires and the job runs again.

A progress note waits for the write lock a moment only (the handler's own session may hold
it); one that could not be written is kept and written with the next heartbeat.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.errors import describe_exception, is_busy
from service.core.logs import scope
from service.core.metrics import observe_job
from service.core.orm import utcnow
from service.jobs import leases
from service.jobs.registry import JobCancelled, JobContext, JobInterrupted, JobSpec
from service.jobs.tables import CANCELLED, FAILED, QUEUED, SUCCEEDED, Job
from service.jobs.writes import Writer

log = logging.getLogger(__name__)
PROGRESS_WAIT_S = 0.05  # how long a progress note waits for the write lock
_DEFERRED: Any = object()  # a progress note not written now


@dataclass
class Running:
    """A job this process runs: set `cancel` when a cancel is asked, `lost` with its lease."""

    job_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    # the newest progress note not written yet (fraction, message): the heartbeat writes it
    pending: tuple[float, str] | None = None


class Runner:
    """Runs claimed jobs for one worker (`owner`) and records how each ended."""

    def __init__(
        self,
        ctx: ServiceContext,
        owner: str,
        writer: Writer,
        stopping: threading.Event,
        *,
        progress_interval_s: float,
    ) -> None:
        self.ctx = ctx
        self.owner = owner
        self.writer = writer
        self.stopping = stopping
        self.progress_interval_s = progress_interval_s

    def run(self, spec: JobSpec, job: Job, running: Running) -> None:
        """Run `job`'s handler in this thread, then write its outcome (unless the lease is lost)."""
        started = time.monotonic()
        with scope(job.id, actor=f"job:{job.kind}"):  # log lines and audit entries of the run
            values = self._outcome(spec, job, running)
        if values is None:
            return
        seconds = time.monotonic() - started
        observe_job(job.kind, values["status"], seconds)
        log.info("job %s (%s): %s after %.1f s", job.id, job.kind, values["status"], seconds)
        self._record(job, values)

    def _outcome(self, spec: JobSpec, job: Job, running: Running) -> dict[str, Any] | None:
        """The column values the run ends with (None: the lease is lost, write nothing)."""
        context = JobContext(
            job_id=job.id,
            params=dict(job.params or {}),
            attempt=job.attempts,
            progress=self._progress_callback(running),
            check_cancelled=lambda: self.check(running, read=True),
            checkpoint=dict(job.checkpoint or {}),
            save_checkpoint=lambda state: self._save_checkpoint(running, state),
        )
        try:
            result = spec.handler(self.ctx, context)
        except JobCancelled:
            return {"status": CANCELLED, "message": "cancelled", "finished_at": utcnow()}
        except JobInterrupted as err:
            if running.lost.is_set():
                log.warning("job %s: lease lost (%s); another worker runs it", job.id, err)
                return None
            return {
                "status": QUEUED,
                "attempts": Job.attempts - 1,
                "message": "requeued: the service stopped",
            }
        except spec.retry_on as err:
            return self._retry(spec, job, err)  # type: ignore[arg-type]
        except Exception as err:  # every failure is recorded on the job, never lost
            if is_busy(err):  # the database stayed locked: worth another attempt
                return self._retry(spec, job, err)
            return self._failed(job, err)
        return {
            "status": SUCCEEDED,
            "progress": 1.0,
            "message": "done",
            "result": result,
            "finished_at": utcnow(),
        }

    def _retry(self, spec: JobSpec, job: Job, err: Exception) -> dict[str, Any]:
        """Queue the job again after a backoff, or fail it once its attempts are spent."""
        if job.attempts >= job.max_attempts:
            return self._failed(job, err)
        delay = spec.retry_delay_s * 2 ** (job.attempts - 1)
        code, message = describe_exception(err)
        log.warning(
            "job %s: attempt %d failed (%s); retrying in %.0f s", job.id, job.attempts, code, delay
        )
        return {
            "status": QUEUED,
            "run_after": utcnow() + timedelta(seconds=delay),
            "message": f"retrying in {delay:.0f} s after {code}: {message}"[:2000],
        }

    def _failed(self, job: Job, err: Exception) -> dict[str, Any]:
        code, message = describe_exception(err)
        log.error("job %s (%s) failed: %s", job.id, job.kind, code, exc_info=err)
        return {
            "status": FAILED,
            "error_code": code,
            "error_message": message,
            "message": "failed",
            "finished_at": utcnow(),
        }

    def _record(self, job: Job, values: dict[str, Any]) -> None:
        """Write the outcome; on a busy database retry until written, the lease is lost or
        the service stops (the lease then expires and the job runs again)."""

        def write(session: Session) -> bool:
            return leases.release(session, job.id, self.owner, now=utcnow(), **values)

        while True:
            try:
                held = self.writer.write(write)
                break
            except Exception as err:
                if is_busy(err) and not self.stopping.is_set():
                    log.warning(
                        "job %s: outcome %s delayed: database busy", job.id, values["status"]
                    )
                    continue
                if (
                    is_busy(err)
                    or not isinstance(err, StatementError)
                    or values["status"] != SUCCEEDED
                ):
                    log.exception(
                        "job %s: outcome %s not written; the lease will expire",
                        job.id,
                        values["status"],
                    )
                    return
                values = self._failed(job, err)  # e.g. a result that is not JSON: record that
        if not held:
            log.warning("job %s: outcome %s dropped, the lease was lost", job.id, values["status"])

    # -- what handlers call -----------------------------------------------------------------

    def _progress_callback(self, running: Running) -> Callable[[float, str], None]:
        last = [-math.inf]

        def progress(fraction: float, message: str) -> None:
            self.check(running, read=False)
            now = time.monotonic()
            if now - last[0] < self.progress_interval_s and fraction < 1.0:
                return
            last[0] = now
            value = 0.0 if math.isnan(fraction) else max(0.0, min(1.0, fraction))
            running.pending = (value, message)

            def write(session: Session) -> bool | None:
                return leases.record_progress(
                    session, running.job_id, self.owner, value, message, now=utcnow()
                )

            units = lambda: self.ctx.writing(wait_s=PROGRESS_WAIT_S)  # noqa: E731
            flag = self.writer.best_effort(write, default=_DEFERRED, units=units)
            if flag is _DEFERRED:
                return  # kept in `pending` for the heartbeat
            if running.pending == (value, message):
                running.pending = None
            self._apply(running, flag)  # type: ignore[arg-type]

        return progress

    def check(self, running: Running, *, read: bool) -> None:
        """Raise `JobInterrupted` or `JobCancelled` when the job must stop (`read`: ask the db)."""
        if running.lost.is_set():
            raise JobInterrupted("this worker lost the job's lease")
        if running.cancel.is_set():
            raise JobCancelled("the job was cancelled")
        if self.stopping.is_set():
            raise JobInterrupted("the service is stopping")
        if read:

            def ask(session: Session) -> bool | None:
                return leases.cancel_requested(session, running.job_id, self.owner)

            self._apply(running, self.writer.read(ask))

    def _apply(self, running: Running, flag: bool | None) -> None:
        if flag is None:
            running.lost.set()
        elif flag:
            running.cancel.set()
        self.check(running, read=False)

    def _save_checkpoint(self, running: Running, state: dict[str, Any]) -> None:
        def write(session: Session) -> bool:
            return leases.save_checkpoint(session, running.job_id, self.owner, state)

        if not self.writer.write(write):
            running.lost.set()
            raise JobInterrupted("this worker lost the job's lease")
