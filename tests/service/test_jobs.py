"""Durable jobs: leases, restarts, exclusivity across processes, cancelling, busy databases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from labeling.errors import LabelStudioUnavailable
from service.api.app import build_context
from service.context import ServiceContext
from service.core.db import make_engine, session_factory
from service.core.errors import NotEnoughLabels
from service.core.orm import utcnow
from service.jobs import leases
from service.jobs.queue import JobFinished, cancel, enqueue, get_job
from service.jobs.registry import JobContext, JobSpec, build_registry
from service.jobs.tables import Job
from service.jobs.worker import Worker, WorkerOptions
from tests.helpers import ImagePool, make_settings

FAST = WorkerOptions(lease_s=1.0, poll_s=0.05, progress_interval_s=0.0, write_retry_s=10.0)


@pytest.fixture(scope="module")
def base_context(
    tmp_path_factory: pytest.TempPathFactory, fashion_pool: ImagePool
) -> ServiceContext:
    return build_context(make_settings(tmp_path_factory.mktemp("jobs"), fashion_pool))


def on_database(base: ServiceContext, url: str, **engine_options: Any) -> ServiceContext:
    """The context as another process would have it: its own engine on `url`."""
    engine = make_engine(url, **engine_options)
    return replace(base, engine=engine, sessions=session_factory(engine))


@pytest.fixture
def ctx(base_context: ServiceContext, database_url: str) -> Iterator[ServiceContext]:
    context = on_database(base_context, database_url)
    yield context
    context.engine.dispose()


@pytest.fixture
def other(ctx: ServiceContext, database_url: str) -> Iterator[ServiceContext]:
    """A second process on the same database."""
    context = on_database(ctx, database_url)
    yield context
    context.engine.dispose()


def add_job(ctx: ServiceContext, kind: str, params: dict[str, Any] | None = None, **kw: Any) -> str:
    with ctx.sessions() as session:
        job = enqueue(session, kind, params or {}, **kw)
        session.commit()
        return job.id


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.sessions() as session:
        return get_job(session, job_id)


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def steps(n: int, pause_s: float = 0.02) -> Callable[[ServiceContext, JobContext], dict[str, Any]]:
    def handler(_ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
        for i in range(n):
            job.progress(i / n, f"step {i}")
            time.sleep(pause_s)
        return {"steps": n, "attempt": job.attempt, "checkpoint": job.checkpoint}

    return handler


def test_enqueue_dedupes_an_active_job_and_keys_tell_work_apart(ctx: ServiceContext) -> None:
    first = add_job(ctx, "push", {"round_id": 1}, scope="p", key="1")
    assert add_job(ctx, "push", {"round_id": 1}, scope="p", key="1") == first
    assert add_job(ctx, "push", {"round_id": 2}, scope="p", key="2") != first
    with ctx.sessions() as session:
        cancel(session, first)
        session.commit()
    assert add_job(ctx, "push", {"round_id": 1}, scope="p", key="1") != first


def test_two_processes_enqueueing_at_once_get_one_job(
    ctx: ServiceContext, other: ServiceContext
) -> None:
    barrier = threading.Barrier(6)
    found: list[str] = []

    def enqueue_from(context: ServiceContext) -> None:
        barrier.wait()
        found.append(add_job(context, "round", {"k": 5}, scope="project"))

    threads = [threading.Thread(target=enqueue_from, args=(c,)) for c in [ctx, other] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 6 and len(set(found)) == 1


def test_a_job_whose_worker_died_is_resumed_with_its_checkpoint(
    ctx: ServiceContext, other: ServiceContext
) -> None:
    job_id = add_job(ctx, "work")
    with other.sessions() as session:  # a process claims it, saves a checkpoint, then dies
        claimed = leases.claim(session, ["work"], "dead", lease_s=0.3, now=utcnow())
        assert claimed is not None and claimed.id == job_id
        leases.save_checkpoint(session, job_id, "dead", {"done": 3})
        session.commit()
    time.sleep(0.4)
    worker = Worker(ctx, {"work": JobSpec("work", steps(3))}, FAST)
    worker.start()
    try:
        wait_until(lambda: job_row(ctx, job_id).status == "succeeded")
    finally:
        worker.stop()
    job = job_row(ctx, job_id)
    assert job.result == {"steps": 3, "attempt": 2, "checkpoint": {"done": 3}}
    assert job.attempts == 2 and job.lease_owner is None and job.progress == 1.0


def test_start_up_leaves_a_live_process_s_job_alone(
    ctx: ServiceContext, other: ServiceContext
) -> None:
    job_id = add_job(ctx, "work")
    with other.sessions() as session:
        assert leases.claim(session, ["work"], "alive", lease_s=60, now=utcnow()) is not None
        session.commit()
    worker = Worker(ctx, {"work": JobSpec("work", steps(1))}, FAST)
    worker.start()
    time.sleep(0.3)
    worker.stop()
    job = job_row(ctx, job_id)
    assert (job.status, job.lease_owner, job.error_code) == ("running", "alive", None)


def test_attempts_exhausted_fail_the_job_as_interrupted(ctx: ServiceContext) -> None:
    job_id = add_job(ctx, "work")
    for attempt in range(3):  # three processes die in turn while running it
        with ctx.sessions() as session:
            assert leases.claim(session, ["work"], f"dead-{attempt}", lease_s=0.0, now=utcnow())
            session.commit()
        with ctx.sessions() as session:
            leases.recover_expired(session, now=utcnow() + timedelta(seconds=1))
            session.commit()
    job = job_row(ctx, job_id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "interrupted", 3)


def test_one_scope_runs_one_job_at_a_time_across_two_workers(
    ctx: ServiceContext, other: ServiceContext
) -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def tracked(_ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
        scope = str(job.params["scope"])
        with lock:
            running[scope] = running.get(scope, 0) + 1
            peak[scope] = max(peak.get(scope, 0), running[scope])
        time.sleep(0.15)
        with lock:
            running[scope] -= 1
        return {}

    registry = {kind: JobSpec(kind, tracked) for kind in ("round", "push", "other")}
    ids = [add_job(ctx, "round", {"scope": "p"}, scope="p")]
    ids += [add_job(ctx, "push", {"scope": "p"}, scope="p", key=str(i)) for i in range(3)]
    ids += [add_job(ctx, "other", {"scope": "q"}, scope="q", key=str(i)) for i in range(2)]
    workers = [Worker(c, registry, replace(FAST, threads=2)) for c in (ctx, other)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: all(job_row(ctx, i).status == "succeeded" for i in ids))
    finally:
        for worker in workers:
            worker.stop()
    assert peak == {"p": 1, "q": 1}


def test_cancel_a_queued_job_at_once_and_a_running_one_at_its_next_progress(
    ctx: ServiceContext,
) -> None:
    started = threading.Event()

    def endless(_ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
        started.set()
        while True:
            job.progress(0.5, "working")
            time.sleep(0.01)

    running_id = add_job(ctx, "endless", scope="a")
    queued_id = add_job(ctx, "endless", scope="b", key="later")
    with ctx.sessions() as session:
        assert cancel(session, queued_id).status == "cancelled"
        session.commit()
    worker = Worker(ctx, {"endless": JobSpec("endless", endless)}, FAST)
    worker.start()
    try:
        assert started.wait(10)
        with ctx.sessions() as session:
            assert cancel(session, running_id).cancel_requested
            session.commit()
        wait_until(lambda: job_row(ctx, running_id).status == "cancelled")
    finally:
        worker.stop()
    assert job_row(ctx, queued_id).started_at is None
    with ctx.sessions() as session:  # cancelling again is harmless
        assert cancel(session, running_id).status == "cancelled"


def test_a_finished_job_cannot_be_cancelled(ctx: ServiceContext) -> None:
    job_id = add_job(ctx, "work")
    assert Worker(ctx, {"work": JobSpec("work", steps(1))}, FAST).run_once() == job_id
    with ctx.sessions() as session, pytest.raises(JobFinished):
        cancel(session, job_id)


def test_a_failing_handler_records_its_code_and_message(ctx: ServiceContext) -> None:
    def refuses(_ctx: ServiceContext, _job: JobContext) -> dict[str, Any]:
        raise NotEnoughLabels("3 confirmed labels; training needs at least 10")

    job_id = add_job(ctx, "train")
    worker = Worker(ctx, {"train": JobSpec("train", refuses)}, FAST)
    assert worker.run_once() == job_id
    job = job_row(ctx, job_id)
    assert (job.status, job.error_code) == ("failed", "not_enough_labels")
    assert job.error_message == "3 confirmed labels; training needs at least 10"
    assert job.finished_at is not None and job.lease_owner is None


def test_an_outside_system_down_is_retried_then_succeeds(ctx: ServiceContext) -> None:
    def flaky(_ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
        if job.attempt == 1:
            raise LabelStudioUnavailable("Label Studio is not reachable")
        return {"attempt": job.attempt}

    spec = JobSpec("push", flaky, retry_on=(LabelStudioUnavailable,), retry_delay_s=0.2)
    job_id = add_job(ctx, "push")
    worker = Worker(ctx, {"push": spec}, FAST)
    worker.run_once()
    assert job_row(ctx, job_id).status == "queued" and worker.run_once() is None  # not yet due
    time.sleep(0.25)
    assert worker.run_once() == job_id
    assert job_row(ctx, job_id).result == {"attempt": 2}


def test_stopping_the_worker_requeues_its_running_job(ctx: ServiceContext) -> None:
    job_id = add_job(ctx, "slow")
    worker = Worker(ctx, {"slow": JobSpec("slow", steps(1000, 0.01))}, FAST)
    worker.start()
    wait_until(lambda: job_row(ctx, job_id).status == "running")
    worker.stop()
    job = job_row(ctx, job_id)
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)


def test_periodic_kinds_are_enqueued_on_schedule_one_at_a_time(ctx: ServiceContext) -> None:
    spec = JobSpec("tick", steps(1), every_s=lambda settings: 0.2, scope="studio")
    worker = Worker(ctx, build_registry({"tick": spec}), FAST)
    worker.start()
    time.sleep(1.3)
    worker.stop()
    with ctx.sessions() as session:
        jobs = session.query(Job).filter(Job.kind == "tick").all()
    assert 3 <= len(jobs) <= 8
    assert sum(job.status in ("queued", "running") for job in jobs) <= 1


def test_a_busy_database_delays_the_outcome_but_never_loses_it(
    base_context: ServiceContext, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    ctx = on_database(base_context, url, busy_timeout_s=0.05)
    job_id = add_job(ctx, "work")
    hold = threading.Event()

    def work(_ctx: ServiceContext, _job: JobContext) -> dict[str, Any]:
        hold.set()
        time.sleep(0.2)  # the outcome write comes while another process holds the write lock
        return {"ok": True}

    blocker = make_engine(url).raw_connection()
    worker = Worker(ctx, {"work": JobSpec("work", work)}, FAST)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    assert hold.wait(10)
    blocker.execute("BEGIN IMMEDIATE")
    time.sleep(1.5)
    assert job_row(ctx, job_id).status == "running"
    blocker.rollback()
    thread.join(20)
    assert (job_row(ctx, job_id).status, job_row(ctx, job_id).result) == ("succeeded", {"ok": True})
    blocker.close()
    ctx.engine.dispose()


def test_a_kind_declared_twice_is_refused() -> None:
    spec = JobSpec("train", steps(1))
    with pytest.raises(ValueError, match="declared twice"):
        build_registry({"train": spec}, {"train": spec})
    with pytest.raises(ValueError, match="names a spec"):
        build_registry({"learn": spec})
