"""Stored annotations, each with its annotator, the prediction shown and the guide in force."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.routes.jobs import accepted
from service.api.schemas import JobAccepted
from service.auth.roles import Role, requires
from service.context import ServiceContext
from service.core.orm import Annotation
from service.jobs.queue import enqueue
from service.studio.jobs import RECONCILE_KIND, project_scope

router = APIRouter(tags=["annotations"])


class AnnotationOut(BaseModel):
    id: int
    studio_annotation_id: int
    project_id: int | None
    task_id: int
    image_id: int | None
    status: str  # accepted | cancelled (skipped) | rejected
    label: str | None
    problem_code: str | None
    problem: str | None
    annotator: int | None  # Label Studio user id (`completed_by`)
    lead_time: float | None
    shown_prediction_id: int | None
    shown_model_version: str | None
    shown_label: str | None
    guide_version: str
    guide_fingerprint: str
    studio_created_at: datetime | None
    studio_updated_at: datetime | None
    deleted: bool


class ReconcileIn(BaseModel):
    full: bool = False  # read every task, not only those changed since the watermark


@router.get("/annotations", response_model=Page[AnnotationOut])
@requires(Role.reviewer)
def list_annotations(
    session: SessionDep,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    image_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    annotator: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    include_deleted: bool = False,
) -> Page[AnnotationOut]:
    """Annotations in the order they were first stored."""
    query = select(Annotation)
    if image_id is not None:
        query = query.where(Annotation.image_id == image_id)
    if annotator is not None:
        query = query.where(Annotation.annotator == annotator)
    if not include_deleted:
        query = query.where(Annotation.deleted.is_(False))
    rows, next_cursor = page_rows(session, query, Annotation.id, limit=limit, cursor=cursor)
    return Page(
        items=[AnnotationOut.model_validate(row, from_attributes=True) for row in rows],
        next_cursor=next_cursor,
    )


@router.post(
    "/annotations/reconcile", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED
)
@requires(Role.pipeline)
def start_reconcile(
    context: ContextDep, session: SessionDep, body: ReconcileIn | None = None
) -> JobAccepted:
    """Re-read what changed in Label Studio since the last pass (or everything), as a job.

    One reconciliation per project runs or waits at a time: asking again returns that one.
    """
    return _enqueue_reconcile(context, session, full=bool(body and body.full))


@router.post("/annotations/sync", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
@requires(Role.pipeline)
def start_full_read(context: ContextDep, session: SessionDep) -> JobAccepted:
    """Read every task of the project back (a full reconciliation), as a job."""
    return _enqueue_reconcile(context, session, full=True)


def _enqueue_reconcile(context: ServiceContext, session: Session, *, full: bool) -> JobAccepted:
    scope = project_scope(context.settings)
    job = enqueue(session, RECONCILE_KIND, {"full": full}, scope=scope)
    session.commit()
    return accepted(job.id)
