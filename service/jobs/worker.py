"""The worker: threads in the service process that claim, run and record jobs.

- Job threads claim queued jobs (a lease each) and run their handler (`runner.py`).
- A housekeeping thread heartbeats the leases held, notices cancels, requeues or fails jobs
  whose lease expired (a dead process's, never a live one's) and enqueues periodic kinds
  (`periodic.py`).
- Every write is its own short unit (it takes the write lock when it begins), retried with
  backoff while the database is busy (`writes.py`); reads that decide whether to write run
  in read-only sessions, so an idle worker never takes the write lock.
- A heartbeat is retried until the lease it extends would expire, so a busy database does
  not cost a running job its lease; it also writes the progress notes that had to wait.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.orm import utcnow
from service.jobs import leases
from service.jobs.periodic import PeriodicScheduler
from service.jobs.queue import ENQUEUED_KEY
from service.jobs.registry import JobSpec
from service.jobs.runner import Runner, Running
from service.jobs.tables import Job
from service.jobs.writes import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    threads: int = 1  # job threads in this process
    lease_s: float = 60.0  # a job whose lease is this old without a heartbeat is a dead one's
    poll_s: float = 1.0  # how often idle threads look for work enqueued by other processes
    progress_interval_s: float = 0.25  # at most one progress write per job this often
    write_retry_s: float = 30.0  # how long an outcome write is retried on a busy database


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
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._writer = Writer(ctx.writing, ctx.reading, self.options.write_retry_s)
        self._last_beat = time.monotonic()  # when the leases held were last extended
        self._runner = Runner(
            ctx,
            self.owner,
            self._writer,
            self._stopping,
            progress_interval_s=self.options.progress_interval_s,
        )
        self._periodic = PeriodicScheduler(self.registry, ctx.settings, self._writer)

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
        shortest = self._periodic.shortest_interval_s()
        tick = tick if shortest is None else min(tick, shortest)
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
            job = self._writer.write(take, retry_s=0.0)
        except (IntegrityError, OperationalError):  # another worker took that scope first
            return None
        if job is None:
            return None
        running = Running(job.id)
        with self._lock:
            self._running[job.id] = running
        try:
            self._runner.run(self.registry[job.kind], job, running)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
        return job.id

    # -- housekeeping -----------------------------------------------------------------------

    def housekeeping(self) -> None:
        """Heartbeat held leases, recover expired ones, enqueue periodic kinds that are due."""
        self._heartbeat()
        if not self._writer.read(lambda s: leases.any_expired(s, now=utcnow())):
            requeued, ended = 0, 0  # the usual case: no write, no lock taken
        else:
            requeued, ended = self._writer.write(lambda s: leases.recover_expired(s, now=utcnow()))
        if requeued or ended:
            log.warning("jobs of stopped workers: %d requeued, %d ended", requeued, ended)
            self._wake.set()
        self._periodic.enqueue_due()

    def _heartbeat(self) -> None:
        """Extend the leases this process holds; flag the jobs cancelled or no longer held."""
        with self._lock:
            held = dict(self._running)
        if not held:
            self._last_beat = time.monotonic()
            return
        notes = {job_id: r.pending for job_id, r in held.items() if r.pending is not None}

        def beat(session: Session) -> dict[str, bool]:
            now = utcnow()
            alive = leases.extend_leases(
                session, held, self.owner, lease_s=self.options.lease_s, now=now
            )
            for job_id, (fraction, message) in notes.items():
                leases.record_progress(session, job_id, self.owner, fraction, message, now=now)
            return alive

        # retried until the leases would expire: after that another worker may take the jobs
        retry_s = self._last_beat + 0.9 * self.options.lease_s - time.monotonic()
        alive = self._writer.write(beat, retry_s=max(retry_s, 0.0))
        self._last_beat = time.monotonic()
        for job_id, note in notes.items():
            if held[job_id].pending == note:
                held[job_id].pending = None
        for job_id, running in held.items():
            if job_id not in alive:
                running.lost.set()
            elif alive[job_id]:
                running.cancel.set()
