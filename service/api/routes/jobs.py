"""Jobs: list them, follow one, cancel one."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from service.api.deps import SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.registry import JobKind
from service.api.schemas import JobAccepted, JobStatus
from service.auth.roles import Role, requires
from service.jobs.queue import cancel, get_job
from service.jobs.tables import Job

router = APIRouter(tags=["jobs"])
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


def accepted(job_id: str) -> JobAccepted:
    return JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}")


@router.get("/jobs", response_model=Page[JobStatus])
@requires(Role.pipeline, Role.reviewer)
def list_jobs(
    session: SessionDep,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    kind: Annotated[JobKind | None, Query()] = None,
    status: JobState | None = None,
) -> Page[JobStatus]:
    """Jobs, oldest first (ids sort by creation), optionally of one kind and status."""
    query = select(Job)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    rows, next_cursor = page_rows(session, query, Job.id, limit=limit, cursor=cursor)
    return Page(items=[job_out(job) for job in rows], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", response_model=JobStatus)
@requires(Role.pipeline, Role.reviewer)
def job_status(job_id: str, session: SessionDep) -> JobStatus:
    return job_out(get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobStatus)
@requires(Role.admin)
def cancel_job(job_id: str, session: SessionDep) -> JobStatus:
    """A queued job is cancelled at once; a running one at its next progress report.

    A job that already ended answers 409 `job_finished`.
    """
    job = cancel(session, job_id)
    session.commit()
    return job_out(job)


def job_out(job: Job) -> JobStatus:
    error = (
        {"code": job.error_code or "", "message": job.error_message or ""}
        if job.status == "failed"
        else None
    )
    return JobStatus(
        id=job.id,
        kind=job.kind,
        scope=job.scope,
        status=job.status,  # type: ignore[arg-type]
        progress=job.progress,
        percent=int(job.progress * 100),
        message=job.message,
        params=job.params,
        result=job.result,
        error=error,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
