"""Job status: what a long piece of work is doing and how far it has got."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import SessionDep
from service.api.schemas import JobAccepted, JobStatus
from service.core.errors import NotFound
from service.jobs.tables import Job

router = APIRouter(tags=["jobs"])


def accepted(job_id: str) -> JobAccepted:
    return JobAccepted(job_id=job_id, status_url=f"/v1/jobs/{job_id}")


@router.get("/jobs/{job_id}", response_model=JobStatus)
def job_status(job_id: str, session: SessionDep) -> JobStatus:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    error = (
        {"code": job.error_code or "", "message": job.error_message or ""}
        if job.status == "failed"
        else None
    )
    return JobStatus(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=job.progress,  # type: ignore[arg-type]
        percent=int(job.progress * 100),
        message=job.message,
        params=job.params,
        result=job.result,
        error=error,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
