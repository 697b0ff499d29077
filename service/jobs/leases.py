"""The job state machine in SQL: claim with a lease, heartbeat, finish, recover.

Every write on a running job is guarded by `lease_owner = me AND status = 'running'`: a
worker that lost its lease (it stalled past expiry and the job was handed on) can no longer
change the job. Each function only executes; the worker commits, one short unit each.
On PostgreSQL a unit that updates several jobs locks their rows in id order (`_in_order`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.jobs.tables import CANCELLED, FAILED, QUEUED, RUNNING, Job


def claim(
    session: Session, kinds: Collection[str], owner: str, *, lease_s: float, now: datetime
) -> Job | None:
    """Take the oldest due queued job of `kinds` whose scope runs nothing; None if none.

    One statement: `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING`.
    PostgreSQL skips rows other workers are claiming; SQLite runs the statement under its
    write lock. The unique index on running scopes rejects a second claim of one scope
    (`IntegrityError`, which the caller treats as "nothing claimed").
    """
    running = aliased(Job)
    candidate = (
        select(Job.id)
        .where(
            Job.status == QUEUED,
            Job.kind.in_(list(kinds)),
            or_(Job.run_after.is_(None), Job.run_after <= now),
            ~exists().where(running.scope == Job.scope, running.status == RUNNING),
        )
        .order_by(Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claimed = session.execute(
        update(Job)
        .where(Job.id == candidate, Job.status == QUEUED)
        .values(
            status=RUNNING,
            attempts=Job.attempts + 1,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            heartbeat_at=now,
            started_at=now,
            updated_at=now,
            run_after=None,
            message="started",
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        return None
    return session.scalars(
        select(Job).where(Job.id == claimed).execution_options(populate_existing=True)
    ).one()


def _in_order(session: Session, condition: Any) -> None:
    """Lock the rows `condition` matches in id order first (PostgreSQL; SQLite holds the
    database's write lock already): units that update several jobs never deadlock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Job.id).where(condition).order_by(Job.id).with_for_update())


def _held(job_id: str, owner: str) -> Any:
    return and_(Job.id == job_id, Job.lease_owner == owner, Job.status == RUNNING)


def extend_leases(
    session: Session, job_ids: Collection[str], owner: str, *, lease_s: float, now: datetime
) -> dict[str, bool]:
    """Heartbeat: push back the leases still held; {job id: cancel requested} for those."""
    if not job_ids:
        return {}
    mine = and_(Job.id.in_(list(job_ids)), Job.lease_owner == owner, Job.status == RUNNING)
    _in_order(session, mine)
    session.execute(
        update(Job)
        .where(mine)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(Job.id, Job.cancel_requested).where(
            Job.id.in_(list(job_ids)), Job.lease_owner == owner, Job.status == RUNNING
        )
    )
    return {job_id: bool(cancel) for job_id, cancel in rows}


def record_progress(
    session: Session, job_id: str, owner: str, fraction: float, message: str, *, now: datetime
) -> bool | None:
    """Store progress; returns whether a cancel was asked, or None when the lease is lost."""
    session.execute(
        update(Job)
        .where(_held(job_id, owner))
        .values(progress=fraction, message=message[:2000], updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return cancel_requested(session, job_id, owner)


def cancel_requested(session: Session, job_id: str, owner: str) -> bool | None:
    """Whether a cancel was asked for a job this owner holds; None when it no longer does."""
    flag = session.scalar(select(Job.cancel_requested).where(_held(job_id, owner)))
    return None if flag is None else bool(flag)


def release(session: Session, job_id: str, owner: str, *, now: datetime, **values: Any) -> bool:
    """Write a held job's outcome or requeue it (`values`) and free the lease; False if lost."""
    done = session.execute(
        update(Job)
        .where(_held(job_id, owner))
        .values(
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def save_checkpoint(session: Session, job_id: str, owner: str, state: dict[str, Any]) -> bool:
    done = session.execute(
        update(Job)
        .where(_held(job_id, owner))
        .values(checkpoint=state)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def any_expired(session: Session, *, now: datetime) -> bool:
    """Whether a running job's lease has expired (a read: `recover_expired` is then due)."""
    expired = and_(Job.status == RUNNING, Job.lease_expires_at < now)
    return session.scalar(select(exists().where(expired))) is True


def recover_expired(session: Session, *, now: datetime) -> tuple[int, int]:
    """Jobs whose lease expired (their process died): requeue or fail them.

    A live process heartbeats its leases, so its jobs are never touched. Returns
    (requeued, ended): ended jobs were cancelled if asked, else failed `interrupted`.
    """
    expired = and_(Job.status == RUNNING, Job.lease_expires_at < now)
    _in_order(session, expired)
    released = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    requeued = session.execute(
        update(Job)
        .where(expired, Job.attempts < Job.max_attempts, Job.cancel_requested.is_(False))
        .values(status=QUEUED, message="requeued: its worker stopped", **released)
        .execution_options(synchronize_session=False)
    )
    cancelled = session.execute(
        update(Job)
        .where(expired, Job.cancel_requested.is_(True))
        .values(status=CANCELLED, message="cancelled", finished_at=now, **released)
        .execution_options(synchronize_session=False)
    )
    failed = session.execute(
        update(Job)
        .where(expired)
        .values(
            status=FAILED,
            error_code="interrupted",
            error_message="its worker stopped too often before it finished",
            message="interrupted",
            finished_at=now,
            **released,
        )
        .execution_options(synchronize_session=False)
    )
    ended = cancelled.rowcount + failed.rowcount  # type: ignore[attr-defined]
    return requeued.rowcount, ended  # type: ignore[attr-defined]
