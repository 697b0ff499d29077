"""Putting work on the queue and taking it off: what routes and use cases call.

`enqueue` adds a row in the caller's transaction (the caller commits), so a change and the
job it needs are stored together or not at all. Workers wake when such a transaction commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.core.errors import NotFound, ServiceError
from service.core.orm import utcnow
from service.jobs.tables import ACTIVE, CANCELLED, GLOBAL_SCOPE, QUEUED, RUNNING, Job, new_job_id

# Set on a session whose transaction enqueued work; its commit wakes the in-process workers.
ENQUEUED_KEY = "activelabel.jobs.enqueued"


class JobFinished(ServiceError):
    status_code, code = 409, "job_finished"


def enqueue(
    session: Session,
    kind: str,
    params: dict[str, Any],
    *,
    scope: str = GLOBAL_SCOPE,
    key: str = "",
) -> Job:
    """A queued job of `kind`, or the queued/running one of the same kind, scope and key.

    `scope` names what the job holds exclusively while it runs (one running job per scope);
    `key` tells apart jobs of one kind and scope that are different work. The database
    decides (a unique index on active jobs), so two processes enqueueing at once get the
    same job. Only executes and flushes: the caller commits.
    """
    if not kind or not scope or len(scope) > 255 or len(key) > 255:
        raise ValueError(
            f"expected a kind, and a scope and key of <= 255 characters, got {kind!r}, {scope!r}"
        )
    for _ in range(3):  # the job found active may finish between the insert and the read
        session.execute(_insert_if_absent(session, kind, params, scope, key))
        job = session.scalars(
            select(Job)
            .where(Job.kind == kind, Job.scope == scope, Job.key == key, Job.status.in_(ACTIVE))
            .execution_options(populate_existing=True)
        ).one_or_none()
        if job is not None:
            session.info[ENQUEUED_KEY] = True
            return job
    raise RuntimeError(f"could not enqueue {kind!r} in {scope!r}: the active job kept changing")


def _insert_if_absent(
    session: Session, kind: str, params: dict[str, Any], scope: str, key: str
) -> Insert:
    now = utcnow()
    values = {
        "id": new_job_id(),
        "kind": kind,
        "scope": scope,
        "key": key,
        "params": params,
        "status": QUEUED,
        "progress": 0.0,
        "message": "queued",
        "attempts": 0,
        "max_attempts": 3,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Job).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(Job).values(values).on_conflict_do_nothing()
    raise ValueError(f"jobs need SQLite or PostgreSQL, not {dialect}")


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


def cancel(session: Session, job_id: str) -> Job:
    """Cancel a job: a queued one at once, a running one at its next progress or check.

    Only flushes; the caller commits. A finished job answers `JobFinished`.
    """
    now = utcnow()
    at_once = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED)
        .values(
            status=CANCELLED,
            cancel_requested=True,
            message="cancelled before it started",
            finished_at=now,
            updated_at=now,
        )
    )
    if not at_once.rowcount:  # type: ignore[attr-defined]
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING)
            .values(cancel_requested=True, updated_at=now)
        )
    session.flush()
    job = get_job(session, job_id)
    session.refresh(job)
    if job.status not in (RUNNING, CANCELLED):
        raise JobFinished(f"job {job_id} already {job.status}")
    return job
