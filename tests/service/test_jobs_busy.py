"""Jobs and requests on a busy SQLite database: they wait, retry, and never lose a write.

The write lock is held explicitly (`BEGIN IMMEDIATE` on a connection of its own, or a job's
own session that wrote) and released when the side under test has logged that it met the
busy database, so each test decides the order of events instead of timing them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from service.api.app import build_context
from service.context import ServiceContext
from service.core.db import make_engine, session_factory
from service.jobs.queue import enqueue, get_job
from service.jobs.registry import JobContext, JobSpec
from service.jobs.tables import Job
from service.jobs.worker import Worker, WorkerOptions
from tests.helpers import ImagePool, api_client, make_settings

# Outcome writes give up after 0.1 s: a busy spell of a second outlasts them many times.
OPTIONS = WorkerOptions(lease_s=5.0, poll_s=0.05, progress_interval_s=0.0, write_retry_s=0.1)


@pytest.fixture(scope="module")
def base_context(
    tmp_path_factory: pytest.TempPathFactory, fashion_pool: ImagePool
) -> ServiceContext:
    return build_context(make_settings(tmp_path_factory.mktemp("busy-jobs"), fashion_pool))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "busy.db"


@pytest.fixture
def ctx(base_context: ServiceContext, db_path: Path) -> Iterator[ServiceContext]:
    engine = make_engine(f"sqlite:///{db_path}", busy_timeout_s=0.1)
    context = replace(base_context, engine=engine, sessions=session_factory(engine))
    yield context
    engine.dispose()


class Logged(logging.Handler):
    """Sets `seen` once a record of `logger` contains `text`."""

    def __init__(self, logger: str, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.seen, self.logger = text, threading.Event(), logging.getLogger(logger)

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self) -> Logged:
        self.logger.addHandler(self)
        self.previous = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.previous)


class LockHolder:
    """Another process's writer: holds the database's write lock until `release()`."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def add_job(ctx: ServiceContext, kind: str) -> str:
    with ctx.writing() as session:
        job = enqueue(session, kind, {})
        session.commit()
        return job.id


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.reading() as session:
        return get_job(session, job_id)


def running_job(ctx: ServiceContext, handler: Any) -> tuple[Worker, threading.Thread, str]:
    """A worker running one job of `handler` in a thread (no housekeeping thread)."""
    job_id = add_job(ctx, "work")
    worker = Worker(ctx, {"work": JobSpec("work", handler)}, OPTIONS)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    return worker, thread, job_id


def test_a_heartbeat_survives_a_busy_database(ctx: ServiceContext, db_path: Path) -> None:
    started, finish = threading.Event(), threading.Event()

    def work(_ctx: ServiceContext, _job: JobContext) -> dict[str, Any]:
        started.set()
        assert finish.wait(20)
        return {"ok": True}

    worker, thread, job_id = running_job(ctx, work)
    assert started.wait(20)
    before = job_row(ctx, job_id).lease_expires_at
    holder = LockHolder(db_path)
    with Logged("service.jobs.writes", "database busy") as busy:
        beat = threading.Thread(target=worker.housekeeping)
        beat.start()
        assert busy.seen.wait(10)  # the heartbeat met the busy database...
        time.sleep(OPTIONS.write_retry_s * 3)  # ...and keeps trying past the outcome bound
        holder.release()
        beat.join(10)
    job = job_row(ctx, job_id)
    assert job.status == "running" and job.lease_expires_at > before  # the lease was extended
    finish.set()
    thread.join(20)
    assert job_row(ctx, job_id).status == "succeeded"


def test_a_final_status_is_written_after_a_busy_first_try(
    ctx: ServiceContext, db_path: Path
) -> None:
    started, finish = threading.Event(), threading.Event()

    def work(_ctx: ServiceContext, _job: JobContext) -> dict[str, Any]:
        started.set()
        assert finish.wait(20)
        return {"ok": True}

    with Logged("service.jobs.runner", "delayed: database busy") as delayed:
        worker, thread, job_id = running_job(ctx, work)
        assert started.wait(20)
        holder = LockHolder(db_path)
        finish.set()  # the job ends while the database is locked
        assert delayed.seen.wait(10)  # its outcome write gave up once, and goes on
        assert job_row(ctx, job_id).status == "running"
        holder.release()
        thread.join(20)
    job = job_row(ctx, job_id)
    assert (job.status, job.result, job.lease_owner) == ("succeeded", {"ok": True}, None)
    assert worker.options.write_retry_s == OPTIONS.write_retry_s


def test_progress_never_waits_on_the_lock_its_own_job_holds(
    base_context: ServiceContext, db_path: Path
) -> None:
    """A handler that wrote and computes before it commits: its progress notes return at
    once, and the heartbeat writes the newest one."""
    engine = make_engine(f"sqlite:///{db_path}", busy_timeout_s=5.0)
    ctx = replace(base_context, engine=engine, sessions=session_factory(engine))
    noted, beaten, finish = threading.Event(), threading.Event(), threading.Event()
    waited: list[float] = []

    def work(context: ServiceContext, job: JobContext) -> dict[str, Any]:
        with context.sessions() as session:
            session.execute(text("UPDATE jobs SET message = message WHERE id = :i"), {"i": "x"})
            started = time.monotonic()  # the write lock is this handler's from here on
            job.progress(0.5, "half of the computation done")
            waited.append(time.monotonic() - started)
            noted.set()
            assert beaten.wait(20)
            session.commit()
        assert finish.wait(20)
        return {"ok": True}

    worker, thread, job_id = running_job(ctx, work)
    assert noted.wait(20)
    assert waited[0] < 1.0  # not the 5 s busy timeout
    beaten.set()  # the handler commits: its lock is free
    worker.housekeeping()  # the heartbeat writes the note that waited
    assert job_row(ctx, job_id).message == "half of the computation done"
    finish.set()
    thread.join(20)
    assert job_row(ctx, job_id).status == "succeeded"
    engine.dispose()


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool) -> Iterator[Any]:
    settings = make_settings(tmp_path, fashion_pool, database_busy_timeout_s=0.3)
    with api_client(settings) as client:
        assert client.get("/v1/jobs").status_code == 200  # the key's use is recorded now
        yield client


def test_a_request_on_a_locked_database_answers_503_database_busy(client: Any) -> None:
    holder = LockHolder(client.app.state.context.settings.data_dir / "activelabel.db")
    try:
        started = time.monotonic()
        response = client.post("/v1/jobs/999999/cancel")
        assert time.monotonic() - started >= 0.25  # it waited for the busy timeout first
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "database_busy"
        assert int(response.headers["Retry-After"]) >= 1
        assert client.get("/v1/jobs").status_code == 200  # reads never wait for the lock
    finally:
        holder.release()
    assert client.post("/v1/jobs/999999/cancel").json()["error"]["code"] == "not_found"


def test_a_unit_computing_under_the_lock_makes_a_request_wait_then_succeed(
    client: Any,
) -> None:
    context: ServiceContext = client.app.state.context
    with context.writing() as session:
        job_id = enqueue(session, "reconcile", {}, scope="elsewhere").id
        session.commit()
    wrote, finish = threading.Event(), threading.Event()

    def compute_under_lock() -> None:
        with context.sessions() as session:  # a job handler's session that wrote first
            session.execute(text("UPDATE jobs SET message = message WHERE id = :i"), {"i": "x"})
            wrote.set()
            finish.wait(10)  # computing, well within the busy timeout
            session.commit()

    worker = threading.Thread(target=compute_under_lock)
    worker.start()
    assert wrote.wait(10)
    threading.Timer(0.1, finish.set).start()
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    worker.join(10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
