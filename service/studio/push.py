"""Pushing a round to Label Studio, and a whole round (select, then push)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from labeling.studio_config import project_spec
from labeling.tasks import Suggestion, TaskDraft
from service.audit import record
from service.context import ServiceContext
from service.core.errors import NotFound
from service.core.orm import Round, RoundItem
from service.core.progress import Progress, no_progress
from service.learning.selection import RoundRequest, round_items, select_round
from service.studio.suggestions import refresh_pending_suggestions


def push_round(session: Session, ctx: ServiceContext, round_id: int) -> Round:
    """Send the round's images to Label Studio in rank order; safe to call again after a failure.

    The round is marked `pushing` before the import. A round found in that state was cut
    off mid-push: its images are matched to the tasks already in the project, never
    imported twice.
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(f"round {round_id} does not exist")
    project_id = ctx.gateway.ensure_project(
        project_spec(ctx.guide, title=ctx.settings.label_studio.project_title)
    )
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
    round_.status = "pushed"
    after = {"project_id": project_id, "tasks_created": len(pending), "tasks": len(items)}
    record(session, "task.pushed", subject=("round", round_.id), after=after)
    session.commit()
    refresh_pending_suggestions(session, ctx, project_id, round_.model_version)
    ctx.gateway.use_model_version(project_id, round_.model_version)
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


def run_round(
    ctx: ServiceContext, request: RoundRequest, *, progress: Progress = no_progress
) -> Round:
    """Select a batch and push it: one whole round."""
    with ctx.sessions() as session:
        round_ = select_round(session, ctx, request, progress=progress)
        progress(0.9, "pushing tasks to Label Studio")
        pushed = push_round(session, ctx, round_.id)
        progress(1.0, f"round {pushed.id}: {len(round_items(session, pushed.id))} tasks pushed")
        return pushed
