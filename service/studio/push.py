"""Pushing a round to Label Studio (run as a job: see `studio/jobs.py`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from labeling.tasks import CONTENT_HASH_KEY, Suggestion, TaskDraft
from service.audit import record
from service.context import ServiceContext
from service.core.errors import NotFound
from service.core.orm import Round, RoundItem
from service.core.progress import Progress, no_progress, scaled
from service.learning.selection import round_items
from service.learning.training import current_model
from service.studio.chunks import Backoff, ChunkSender
from service.studio.ledger import (
    LedgerRow,
    PushPlan,
    assign_task_ids,
    highest_task_id,
    plan_push,
    recover,
)
from service.studio.overlap import apply_round_overlap
from service.studio.project import ensure_project
from service.studio.queue_cap import RELEASING, release_budget
from service.studio.suggestions import (
    holds_suggestions,
    refresh_pending_suggestions,
    resign_expiring_urls,
)
from service.studio.twins import heal_twins


def push_round(
    session: Session, ctx: ServiceContext, round_id: int, *, progress: Progress = no_progress
) -> Round:
    """Send the round's images to Label Studio in rank order; safe to call again after a failure.

    Under the guide's WIP limit (`queue_cap.py`) only as many tasks go out as the queue has
    room for: the round stays `releasing`, and the rest follows, still in rank order, as
    answers come in (`release.py` pushes it again).

    Tasks go out in chunked bulk imports (`chunks.py`), each image's content at most once per
    project (`ledger.py`): an image whose content already has a live task there gets that
    task. The round is marked `pushing` before the first import; a push cut off mid-way
    (Label Studio down, a lost answer, a crash) finds the tasks it had created when run
    again, so nothing is imported twice. A pushed round stays pushed: pushing it again
    changes nothing, neither its tasks nor the project's model version.
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(f"round {round_id} does not exist")
    if round_.status == "pushed":
        return round_
    project_id = ensure_project(ctx)  # registers the webhook too
    round_.project_id = project_id
    round_.status = "pushing"
    session.commit()
    floor = highest_task_id(session, project_id)  # a late twin of this push lands above it
    recovered = len(recover(session, ctx.gateway, project_id))  # an import cut off earlier
    session.commit()
    items = round_items(session, round_id)
    plan = plan_push(session, project_id, round_.id, items)
    sender = ChunkSender(
        session,
        ctx.gateway,
        project_id,
        draft_for=lambda row: _draft(row, plan, round_, ctx.media.url(row.image_id)),
        chunk_size=ctx.settings.label_studio.push_chunk_size,
        backoff=Backoff(total_s=ctx.settings.label_studio.push_max_wait_s),
    )
    budget = release_budget(
        session, ctx.guide, configured_annotators=len(ctx.settings.label_studio.annotators)
    )
    released = plan.to_send if budget is None else plan.to_send[:budget]
    report = sender.send(
        released,
        landed=lambda rows: assign_task_ids(session, plan, rows),
        progress=scaled(progress, 0.0, 0.95),
    )
    opened = items
    if budget is not None:  # a release: only the tasks it opened need their overlap
        opened = [item for row in released for item in plan.items[row.content_sha256]]
    overlap = apply_round_overlap(session, ctx.gateway, opened, round_.id, ctx.guide.overlap)
    held = len(plan.to_send) - len(released)
    round_.status = RELEASING if held else "pushed"
    after = {
        "project_id": project_id,
        "tasks": len(items),
        "tasks_created": len(released),
        "tasks_held": held,
        "tasks_reused": plan.reused,
        "tasks_overlapped": len(overlap),
        "chunks": report.chunks,
        "retries": report.retries,
        "recovered": recovered + report.recovered,
    }
    record(session, "task.pushed", subject=("round", round_.id), after=after)
    session.commit()
    # A cut-off import that Label Studio committed after `recover` looked leaves twins.
    twins = heal_twins(session, ctx, project_id, after=floor)
    progress(1.0, f"{len(released)} tasks created, {plan.reused} reused, {held} held back")
    if twins.deleted or twins.adopted:
        progress(1.0, f"{len(twins.deleted)} twin tasks deleted, {len(twins.adopted)} adopted")
    # Suggestions follow the model in force, never an older round's own version.
    model = current_model(session, ctx)
    version = model.id if model is not None else round_.model_version
    refresh_pending_suggestions(session, ctx, project_id, version)
    resign_expiring_urls(session, ctx)
    if holds_suggestions(session, version):
        ctx.gateway.use_model_version(project_id, version)
    return round_


def _draft(row: LedgerRow, plan: PushPlan, round_: Round, image_url: str) -> TaskDraft:
    item: RoundItem = plan.items[row.content_sha256][0]
    return TaskDraft(
        image_id=row.image_id,
        image_url=image_url,  # signed and expiring: the browser needs no API key
        suggestion=Suggestion(
            label=item.predicted_label,
            score=item.predicted_probability,
            model_version=item.model_version,
        ),
        meta={
            "round": round_.id,
            "rank": item.rank,
            "uncertainty": round(item.score, 6),
            CONTENT_HASH_KEY: row.content_sha256,
        },
    )
