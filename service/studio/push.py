"""Pushing a round to Label Studio (run as a job: see `studio/jobs.py`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from labeling.tasks import Suggestion, TaskDraft
from service.audit import record
from service.context import ServiceContext
from service.core.errors import NotFound
from service.core.orm import Round, RoundItem
from service.learning.selection import round_items
from service.learning.training import current_model
from service.studio.overlap import apply_round_overlap
from service.studio.project import ensure_project
from service.studio.suggestions import refresh_pending_suggestions, resign_expiring_urls


def push_round(session: Session, ctx: ServiceContext, round_id: int) -> Round:
    """Send the round's images to Label Studio in rank order; safe to call again after a failure.

    The round is marked `pushing` before the import. A round found in that state was cut
    off mid-push: its images are matched to the tasks already in the project, never
    imported twice. A pushed round stays pushed: pushing it again changes nothing, neither
    its tasks nor the project's model version.
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(f"round {round_id} does not exist")
    if round_.status == "pushed":
        return round_
    project_id = ensure_project(ctx)  # registers the webhook too
    round_.project_id = project_id
    items = round_items(session, round_id)
    if round_.status == "pushing":
        existing = {task.image_id: task.task_id for task in ctx.gateway.list_tasks(project_id)}
        for item in items:
            item.task_id = item.task_id or existing.get(item.image_id)
    round_.status = "pushing"
    session.commit()
    pending = [item for item in items if item.task_id is None]
    drafts = [_draft(item, round_, ctx.media.url(item.image_id)) for item in pending]
    for item, task_id in zip(pending, ctx.gateway.import_tasks(project_id, drafts), strict=True):
        item.task_id = task_id
    session.commit()  # task ids stored before more calls out: no write lock held across them
    plan = apply_round_overlap(session, ctx.gateway, items, round_.id, ctx.guide.overlap)
    round_.status = "pushed"
    after = {"project_id": project_id, "tasks_created": len(pending), "tasks": len(items)}
    after["tasks_overlapped"] = len(plan)
    record(session, "task.pushed", subject=("round", round_.id), after=after)
    session.commit()
    # Suggestions follow the model in force, never an older round's own version.
    model = current_model(session, ctx)
    version = model.id if model is not None else round_.model_version
    refresh_pending_suggestions(session, ctx, project_id, version)
    resign_expiring_urls(session, ctx)
    ctx.gateway.use_model_version(project_id, version)
    return round_


def _draft(item: RoundItem, round_: Round, image_url: str) -> TaskDraft:
    return TaskDraft(
        image_id=item.image_id,
        image_url=image_url,  # signed and expiring: the browser needs no API key
        suggestion=Suggestion(
            label=item.predicted_label,
            score=item.predicted_probability,
            model_version=item.model_version,
        ),
        meta={"round": round_.id, "rank": item.rank, "uncertainty": round(item.score, 6)},
    )
