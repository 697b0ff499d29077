"""The worker: threads in the service process that claim, run and record jobs.

- Job threads claim queued jobs (a lease each) and run their handler.
- A housekeeping thread heartbeats the leases held, notices cancels, requeues or fails jobs
  whose lease expired (a dead process's, never a live one's) and enqueues periodic kinds.
- Every outcome is written with a guarded update retried while the database is busy; if it
  still cannot be written, the lease expires and the job is run again: never lost.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.errors import describe_exception
from service.core.logs import scope
from service.core.metrics import observe_job
from service.core.orm import utcnow
from service.jobs import leases
from service.jobs.queue import ENQUEUED_KEY, enqueue
from service.jobs.registry import JobCancelled, JobContext, JobInterrupted, JobSpec
from service.jobs.tables import CANCELLED, FAILED, QUEUED, SUCCEEDED, Job, as_utc

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class WorkerOptions:
    threads: int = 1  # job threads in this process
    lease_s: float = 60.0  # a job whose lease is this old without a heartbeat is a dead one's
    poll_s: float = 1.0  # how often idle threads look for work enqueued by other processes
    progress_interval_s: float = 0.25  # at most one progress write per job this often
    write_retry_s: float = 30.0  # how long an outcome write is retried on a busy database


@dataclass
class _Running:
    job_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)


class Worker:
    """Runs the jobs of `registry` in `ctx`'s database; `start()` it, `stop()` it."""

    def __init__(
        self,
        ctx: ServiceContext,
        registry: Mapping[str, JobSpec],
        options: WorkerOptions | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.registry = dict(registry)
        self.options = options or WorkerOptions()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._next_periodic: dict[str, float] = {}

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Recover jobs of dead processes, then start the job and housekeeping threads."""
        self.housekeeping()
        event.listen(self.ctx.sessions, "after_commit", self._after_commit)
        for index in range(self.options.threads):
            self._spawn(self._job_loop, f"activelabel-job-{index}")
        self._spawn(self._housekeeping_loop, "activelabel-jobs-housekeeping")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming; running handlers are interrupted at their next check and requeued."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "%s still running after %.0f s; its lease will expire", thread.name, timeout_s
                )
        if event.contains(self.ctx.sessions, "after_commit", self._after_commit):
            event.remove(self.ctx.sessions, "after_commit", self._after_commit)

    def wake(self) -> None:
        self._wake.set()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(ENQUEUED_KEY, False):
            self._wake.set()

    def _job_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                ran = self.run_once()
            except Exception:  # a broken database must not kill the thread
                log.exception("job worker: claiming failed")
                ran = None
            if ran is None:
                self._wake.wait(self.options.poll_s)
                self._wake.clear()

    def _housekeeping_loop(self) -> None:
        tick = min(self.options.lease_s / 3, 5.0)
        periodic = [s.interval(self.ctx.settings) for s in self.registry.values()]
        tick = min([tick, *(every for every in periodic if every is not None)])
        while not self._stopping.wait(tick):
            try:
                self.housekeeping()
            except Exception:
                log.exception("job housekeeping failed")

    # -- claiming and running ---------------------------------------------------------------

    def run_once(self) -> str | None:
        """Claim one due job and run it to its end in this thread; its id, or None if none."""
        if self._stopping.is_set():
            return None

        def take(session: Session) -> Job | None:
            return leases.claim(
                session, self.registry, self.owner, lease_s=self.options.lease_s, now=utcnow()
            )

        try:
            job = self._write(take, retry_s=0.0)
        except (IntegrityError, OperationalError):  # another worker took that scope first
            return None
        if job is None:
            return None
        self._run(job)
        return job.id

    def _run(self, job: Job) -> None:
        spec = self.registry[job.kind]
        running = _Running(job.id)
        with self._lock:
            self._running[job.id] = running
        started = time.monotonic()
        try:  # log lines and audit entries of the run carry the job's id and kind
            with scope(job.id, actor=f"job:{job.kind}"):
                values = self._outcome(spec, job, running)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        if values is not None:
            observe_job(job.kind, values["status"], time.monotonic() - started)
            log.info(
                "job %s (%s): %s after %.1f s",
                job.id,
                job.kind,
                values["status"],
                time.monotonic() - started,
            )
            self._record(job, values)

    def _outcome(self, spec: JobSpec, job: Job, running: _Running) -> dict[str, Any] | None:
        """The column values the run ends with (None: the lease is lost, write nothing)."""
        context = JobContext(
            job_id=job.id,
            params=dict(job.params or {}),
            attempt=job.attempts,
            progress=self._progress_callback(running),
            check_cancelled=lambda: self._check(running, read=True),
            checkpoint=dict(job.checkpoint or {}),
            save_checkpoint=lambda state: self._save_checkpoint(running, state),
        )
        now = utcnow
        try:
            result = spec.handler(self.ctx, context)
        except JobCancelled:
            return {"status": CANCELLED, "message": "cancelled", "finished_at": now()}
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
            if job.attempts < job.max_attempts:
                delay = spec.retry_delay_s * 2 ** (job.attempts - 1)
                code, message = describe_exception(err)  # type: ignore[arg-type]
                log.warning(
                    "job %s: attempt %d failed (%s); retrying in %.0f s",
                    job.id,
                    job.attempts,
                    code,
                    delay,
                )
                return {
                    "status": QUEUED,
                    "run_after": now() + timedelta(seconds=delay),
                    "message": f"retrying in {delay:.0f} s after {code}: {message}"[:2000],
                }
            return self._failed(job, err)  # type: ignore[arg-type]
        except Exception as err:  # every failure is recorded on the job, never lost
            return self._failed(job, err)
        return {
            "status": SUCCEEDED,
            "progress": 1.0,
            "message": "done",
            "result": result,
            "finished_at": now(),
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
        def write(session: Session) -> bool:
            return leases.release(session, job.id, self.owner, now=utcnow(), **values)

        try:
            held = self._write(write)
        except StatementError as err:  # e.g. a result that is not JSON: record that instead
            if isinstance(err, OperationalError) or values["status"] != SUCCEEDED:
                log.exception(
                    "job %s: outcome %s not written; the lease will expire",
                    job.id,
                    values["status"],
                )
                return
            self._record(job, self._failed(job, err))
            return
        if not held:
            log.warning("job %s: outcome %s dropped, the lease was lost", job.id, values["status"])

    # -- what handlers call -----------------------------------------------------------------

    def _progress_callback(self, running: _Running) -> Callable[[float, str], None]:
        last = [-math.inf]

        def progress(fraction: float, message: str) -> None:
            self._check(running, read=False)
            now = time.monotonic()
            final = fraction >= 1.0
            if now - last[0] < self.options.progress_interval_s and not final:
                return
            last[0] = now
            value = 0.0 if math.isnan(fraction) else max(0.0, min(1.0, fraction))

            def write(session: Session) -> bool | None:
                return leases.record_progress(
                    session, running.job_id, self.owner, value, message, now=utcnow()
                )

            self._apply(running, self._best_effort(write, default=False))

        return progress

    def _check(self, running: _Running, *, read: bool) -> None:
        if running.lost.is_set():
            raise JobInterrupted("this worker lost the job's lease")
        if running.cancel.is_set():
            raise JobCancelled("the job was cancelled")
        if self._stopping.is_set():
            raise JobInterrupted("the service is stopping")
        if read:

            def ask(session: Session) -> bool | None:
                return leases.cancel_requested(session, running.job_id, self.owner)

            self._apply(running, self._best_effort(ask, default=False))

    def _apply(self, running: _Running, flag: bool | None) -> None:
        if flag is None:
            running.lost.set()
        elif flag:
            running.cancel.set()
        self._check(running, read=False)

    def _save_checkpoint(self, running: _Running, state: dict[str, Any]) -> None:
        def write(session: Session) -> bool:
            return leases.save_checkpoint(session, running.job_id, self.owner, state)

        if not self._write(write):
            running.lost.set()
            raise JobInterrupted("this worker lost the job's lease")

    # -- housekeeping -----------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Heartbeat held leases, recover expired ones, enqueue periodic kinds that are due."""
        with self._lock:
            held = dict(self._running)
        if held:

            def beat(session: Session) -> dict[str, bool]:
                return leases.extend_leases(
                    session, held, self.owner, lease_s=self.options.lease_s, now=utcnow()
                )

            alive = self._write(beat)
            for job_id, running in held.items():
                if job_id not in alive:
                    running.lost.set()
                elif alive[job_id]:
                    running.cancel.set()
        requeued, ended = self._write(lambda s: leases.recover_expired(s, now=utcnow()))
        if requeued or ended:
            log.warning("jobs of stopped workers: %d requeued, %d ended", requeued, ended)
            self._wake.set()
        self._enqueue_periodic()

    def _enqueue_periodic(self) -> None:
        for spec in self.registry.values():
            every = spec.interval(self.ctx.settings)
            if every is None or time.monotonic() < self._next_periodic.get(spec.kind, 0.0):
                continue
            scope = spec.scope_for(self.ctx.settings)

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

            last = self._write(due)
            wait = (last + timedelta(seconds=every) - utcnow()).total_seconds()
            self._next_periodic[spec.kind] = time.monotonic() + max(wait, 0.0)

    # -- database writes --------------------------------------------------------------------

    def _write(self, action: Callable[[Session], T], *, retry_s: float | None = None) -> T:
        """Run `action` in its own transaction, retried while the database is busy."""
        limit = self.options.write_retry_s if retry_s is None else retry_s
        deadline, delay = time.monotonic() + limit, 0.05
        while True:
            try:
                with self.ctx.sessions() as session:
                    value = action(session)
                    session.commit()
                    return value
            except OperationalError as err:
                if time.monotonic() >= deadline:
                    raise
                log.warning("jobs: database busy (%s); retrying", err.orig)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _best_effort(self, action: Callable[[Session], T], *, default: T) -> T:
        """A write that may be skipped (a progress note): a busy database delays it, no more."""
        try:
            return self._write(action, retry_s=0.0)
        except OperationalError:
            log.warning("jobs: progress not recorded (database busy)")
            return default
