"""Activating a model version (rollback included), then refreshing waiting tasks by a job."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.orm import ModelVersion
from service.jobs.queue import enqueue
from service.jobs.tables import Job
from service.learning.versions import get_version, set_active
from service.studio.jobs import REFRESH_KIND, project_scope


def activate_model(
    session: Session, ctx: ServiceContext, version_id: str
) -> tuple[ModelVersion, Job | None]:
    """Make `version_id` the active version (a use case: commits once).

    When the pointer moves, a job gives every task still waiting for a label this version's
    suggestion (in the project's scope, so never while a round pushes); returns that job.
    """
    model = get_version(session, version_id)
    job = None
    if set_active(session, ctx, model):
        job = enqueue(
            session,
            REFRESH_KIND,
            {"model_version": model.id},
            scope=project_scope(ctx.settings),
            key=model.id,
        )
    session.commit()
    return model, job
