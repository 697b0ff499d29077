"""Reconciliation: re-read from Label Studio what changed since the watermark, store it.

Label Studio never retries a webhook, so this pass catches whatever the service missed
while it was down. The incremental read asks only for tasks whose `updated_at` is after
the watermark (minus a small overlap against clock skew and late commits); a full read
(the first pass, or on request) also finds tasks deleted while nobody listened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labeling.tasks import StudioTask
from service.context import ServiceContext
from service.core.orm import Annotation, utcnow
from service.core.progress import Progress, no_progress
from service.studio.intake import (
    AnnotationProblem,
    IntakeReport,
    as_utc,
    delete_missing,
    delete_tasks,
    store_annotations,
)
from service.studio.project import ensure_project
from service.studio.resolve import resolve_labels
from service.studio.tables import ReconcileState
from service.studio.twins import heal_twins
from service.studio.webhooks import apply_pending


@dataclass
class ReconcileReport:
    project_id: int
    full: bool
    since: datetime | None  # the lower bound of the incremental read (None: full read)
    tasks_seen: int = 0
    events_applied: int = 0  # stored webhook events that were still pending
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    cancelled: int = 0
    deleted: int = 0
    labeled_images: int = 0
    twins_deleted: int = 0  # duplicate tasks of one content removed (`twins.py`)
    twins_adopted: int = 0
    problems: list[AnnotationProblem] = field(default_factory=list)


def reconcile(
    ctx: ServiceContext, *, full: bool = False, progress: Progress = no_progress
) -> ReconcileReport:
    """Store every change since the watermark (or everything when `full`); idempotent."""
    project_id = ensure_project(ctx)
    events_applied = apply_pending(ctx)
    with ctx.sessions() as session:  # tasks created since the last check, pushes' late twins
        twins = heal_twins(session, ctx, project_id)
    started = utcnow()
    since = None if full else _read_from(ctx, project_id)
    progress(0.1, "reading changed tasks" if since else "reading every task")
    if since is None:
        tasks = ctx.gateway.list_tasks(project_id)
    else:
        tasks = ctx.gateway.list_tasks_updated_since(project_id, since)
    progress(0.6, f"storing the annotations of {len(tasks)} tasks")
    report = ReconcileReport(project_id, since is None, since, len(tasks), events_applied)
    for attempt in (1, 2):  # a webhook applied at the same moment may insert a row first
        try:
            with ctx.sessions() as session:
                intake = _store_tasks(session, ctx, project_id, tasks, full=since is None)
                _advance(session, project_id, started, full=since is None, tasks_read=len(tasks))
                session.commit()
            if intake.new or intake.updated or intake.deleted:
                ctx.annotations_changed(None)  # which images is not tracked here
            break
        except IntegrityError:
            if attempt == 2:
                raise
    _copy_counts(intake, report)
    report.twins_deleted, report.twins_adopted = len(twins.deleted), len(twins.adopted)
    progress(1.0, f"{report.new} new, {report.updated} updated, {report.deleted} deleted")
    return report


def _read_from(ctx: ServiceContext, project_id: int) -> datetime | None:
    """The watermark less the overlap; None when no pass has run (a full read is due)."""
    with ctx.sessions() as session:
        state = session.get(ReconcileState, project_id)
        watermark = state.watermark if state is not None else None
    overlap = timedelta(seconds=ctx.settings.label_studio.reconcile_overlap_s)
    return as_utc(watermark) - overlap if watermark is not None else None


def _store_tasks(
    session: Session, ctx: ServiceContext, project_id: int, tasks: list[StudioTask], *, full: bool
) -> IntakeReport:
    intake = IntakeReport()
    shown = {p.prediction_id: p for t in tasks for p in t.predictions}
    annotations = [a for task in tasks for a in task.annotations]
    touched = store_annotations(
        session, annotations, guide=ctx.guide, shown=shown, report=intake, project_id=project_id
    )
    touched |= delete_missing(session, tasks, intake)
    if full:
        touched |= delete_tasks(session, _tasks_gone(session, project_id, tasks), intake)
    intake.labeled_images = resolve_labels(session, touched)
    return intake


def _tasks_gone(session: Session, project_id: int, tasks: list[StudioTask]) -> list[int]:
    """Tasks of the project with live stored annotations that a full read no longer returned."""
    seen = {task.task_id for task in tasks}
    stored = session.scalars(
        select(Annotation.task_id)
        .where(Annotation.project_id == project_id, Annotation.deleted.is_(False))
        .distinct()
    )
    return [task_id for task_id in stored if task_id not in seen]


def _advance(
    session: Session, project_id: int, started: datetime, *, full: bool, tasks_read: int
) -> None:
    """Move the watermark to when this pass started reading (committed with its rows)."""
    state = session.get(ReconcileState, project_id)
    if state is None:
        state = ReconcileState(project_id=project_id)
        session.add(state)
    state.watermark, state.last_run_at, state.tasks_read = started, utcnow(), tasks_read
    if full:
        state.last_full_at = started


def _copy_counts(intake: IntakeReport, report: ReconcileReport) -> None:
    for name in ("new", "updated", "unchanged", "stale", "cancelled", "deleted", "labeled_images"):
        setattr(report, name, getattr(intake, name))
    report.problems = list(intake.problems)
