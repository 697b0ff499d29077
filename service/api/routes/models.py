"""Model versions: list them with their metrics, train one, activate one (rollback)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import select

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.routes.jobs import accepted
from service.api.schemas import ActivationOut, JobAccepted, ModelEvaluationOut, ModelVersionOut
from service.auth.roles import Role, requires
from service.core.errors import NotFound
from service.core.orm import ModelVersion
from service.jobs.queue import enqueue
from service.learning.heads import trained_on_pool
from service.learning.jobs import MODEL_SCOPE, TRAIN_KIND
from service.learning.training import current_model
from service.learning.versions import active_version_id, get_version
from service.studio.activation import activate_model

router = APIRouter(tags=["models"])
VersionId = Annotated[str, Path(max_length=64, description="a model version id")]


@router.get("/models", response_model=Page[ModelVersionOut])
@requires(Role.pipeline, Role.reviewer)
def list_models(
    context: ContextDep, session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ModelVersionOut]:
    """Every trained version with its metrics, and which one is active."""
    rows, next_cursor = page_rows(
        session, select(ModelVersion), ModelVersion.id, limit=limit, cursor=cursor
    )
    active = active_version_id(session, context.runtime.backbone_id)
    return Page(items=[model_out(m, active) for m in rows], next_cursor=next_cursor)


@router.post("/models/train", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
@requires(Role.pipeline)
def train(session: SessionDep) -> JobAccepted:
    """Train a version on every confirmed label, as a job; the version trained becomes active."""
    job = enqueue(session, TRAIN_KIND, {}, scope=MODEL_SCOPE)
    session.commit()
    return accepted(job.id)


@router.get("/models/active", response_model=ModelVersionOut)
@requires(Role.pipeline, Role.reviewer)
def active(context: ContextDep, session: SessionDep) -> ModelVersionOut:
    """The version that serves predictions and rounds."""
    version = current_model(session, context)
    if version is None:
        raise NotFound("no model version is active: train one first")
    return model_out(version, version.id)


@router.get("/models/{version_id}", response_model=ModelVersionOut)
@requires(Role.pipeline, Role.reviewer)
def get_model(version_id: VersionId, context: ContextDep, session: SessionDep) -> ModelVersionOut:
    version = get_version(session, version_id)
    return model_out(version, active_version_id(session, context.runtime.backbone_id))


@router.post("/models/{version_id}/activate", response_model=ActivationOut)
@requires(Role.admin)
def activate(version_id: VersionId, context: ContextDep, session: SessionDep) -> ActivationOut:
    """Make this version the active one (a rollback, or forward again).

    Tasks still waiting for a label get its suggestion through the job returned.
    """
    version, job = activate_model(session, context, version_id)
    return ActivationOut(
        model=model_out(version, version.id),
        refresh_job=accepted(job.id) if job is not None else None,
    )


def model_out(version: ModelVersion, active_id: str | None) -> ModelVersionOut:
    return ModelVersionOut(
        id=version.id,
        backbone_id=version.backbone_id,
        n_train=version.n_train,
        class_names=list(version.class_names),
        metrics=dict(version.metrics),
        head="semi_supervised" if trained_on_pool(version.metrics) else "supervised",
        evaluation=ModelEvaluationOut.model_validate(version.evaluation)
        if version.evaluation is not None
        else None,
        created_at=version.created_at,
        active=version.id == active_id,
    )
