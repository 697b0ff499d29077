"""Healing twin tasks: two Label Studio tasks of one image content in a project.

An import cut off by a crash or a timeout may still be committed by a slow Label Studio
after the next attempt looked for its tasks (`ledger.recover`) and imported them again. The
late tasks carry the same content hash in their `meta` as the ledgered ones but are unknown
to the ledger. This pass reads the tasks created after its watermark (an id: Label Studio
gives a new task an id above every live one), finds such twins and removes them:

- a twin nobody touched (no annotation, draft or skip) is deleted;
- a touched twin whose ledgered task is untouched becomes the content's task (the ledger
  and the round items move to it, its annotations are stored) and the other is deleted;
- when both are touched, both stay: an annotation is never thrown away.

Deleted twins are marked withdrawn before Label Studio is asked to delete them, so an
annotation submitted in that moment is kept (see `intake.delete_tasks`). Each removal is
audited. Talks to Label Studio outside open transactions; idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from labeling.tasks import StudioTask
from service.audit import record
from service.context import ServiceContext
from service.core.orm import DeletedTask, RoundItem
from service.studio.intake import IntakeReport, chunked, store_annotations
from service.studio.ledger import content_hash
from service.studio.resolve import resolve_labels
from service.studio.tables import ContentTask, ReconcileState


@dataclass
class TwinReport:
    """Task ids: `deleted` (untouched twins), `adopted` (touched twins now the live task),
    `kept` (touched twins of a touched task, left in place)."""

    checked: int = 0
    deleted: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Decision:
    digest: str
    live: int  # the task the ledger points at after healing
    delete: list[int]
    kept: list[int]


def heal_twins(
    session: Session, ctx: ServiceContext, project_id: int, *, after: int | None = None
) -> TwinReport:
    """Find and heal the twins among the tasks with an id above `after` (default: the
    watermark, or lower when `after` is lower); commits its own transactions."""
    checked = _watermark(session, project_id)
    start = checked if after is None else min(after, checked)
    session.commit()  # no transaction open across the Label Studio calls
    tail = ctx.gateway.tasks_after(project_id, start)
    ledger = _ledgered(session, project_id, {d for t in tail if (d := content_hash(t))})
    twins = [t for t in tail if (d := content_hash(t)) in ledger and ledger[d] != t.task_id]
    report = TwinReport(checked=len(tail))
    decisions: list[_Decision] = []
    full: dict[int, StudioTask] = {}
    if twins:
        ids = [t.task_id for t in twins] + [ledger[content_hash(t) or ""] for t in twins]
        full = {t.task_id: t for t in ctx.gateway.tasks_by_id(project_id, ids)}
        decisions = _decide(twins, ledger, full)
    doomed = sorted({i for d in decisions for i in d.delete})
    _mark(session, ctx, project_id, decisions, ledger, report, full)
    # Label Studio on SQLite numbers a new task above the highest live one, so a twin that
    # lands later gets an id above every task kept now.
    _set_watermark(
        session,
        project_id,
        max((t.task_id for t in tail if t.task_id not in doomed), default=start),
    )
    session.commit()  # ledger moved and twins marked withdrawn before they are deleted
    if doomed:
        ctx.gateway.delete_tasks(project_id, doomed)
    if report.adopted:
        ctx.annotations_changed(None)
    return report


def _decide(
    twins: Sequence[StudioTask], ledger: dict[str, int], full: dict[int, StudioTask]
) -> list[_Decision]:
    """Per content: which task stays live, which are deleted, which touched ones stay."""
    by_digest: dict[str, list[int]] = {}
    for task in twins:
        by_digest.setdefault(content_hash(task) or "", []).append(task.task_id)
    decisions = []
    for digest, ids in sorted(by_digest.items()):
        live = ledger[digest]
        present = [i for i in ids if i in full]  # a twin deleted meanwhile needs nothing
        touched = [i for i in present if _touched(full[i])]
        if present and (live not in full or (touched and not _touched(full[live]))):
            adopted, *others = touched or present  # the ledgered task is gone or untouched
            delete = [i for i in present if i != adopted and i not in touched]
            delete += [live] if live in full else []
            decisions.append(
                _Decision(digest, adopted, delete, [i for i in others if i in touched])
            )
        else:
            untouched = [i for i in present if i not in touched]
            decisions.append(_Decision(digest, live, untouched, touched))
    return decisions


def _mark(
    session: Session,
    ctx: ServiceContext,
    project_id: int,
    decisions: Sequence[_Decision],
    ledger: dict[str, int],
    report: TwinReport,
    full: dict[int, StudioTask],
) -> None:
    """Move the ledger to adopted twins, store their annotations, mark the doomed (flush)."""
    adopted = [d for d in decisions if d.live != ledger[d.digest]]
    for d in adopted:
        session.execute(
            update(ContentTask)
            .where(ContentTask.project_id == project_id, ContentTask.content_sha256 == d.digest)
            .values(task_id=d.live)
        )
        old = ledger[d.digest]
        session.execute(update(RoundItem).where(RoundItem.task_id == old).values(task_id=d.live))
    if adopted:
        _store(session, ctx, [full[d.live] for d in adopted], project_id)
    doomed = sorted({i for d in decisions for i in d.delete})
    for batch in chunked(doomed):
        known = set(
            session.scalars(select(DeletedTask.task_id).where(DeletedTask.task_id.in_(batch)))
        )
        session.add_all(DeletedTask(task_id=i, withdrawn=True) for i in batch if i not in known)
    for d in decisions:
        before = {"task_id": ledger[d.digest]}
        after = {"task_id": d.live, "deleted": d.delete, "kept": d.kept}
        action = "task.twin_adopted" if d.live != ledger[d.digest] else "task.twin_deleted"
        if d.delete or d.live != ledger[d.digest]:
            record(session, action, subject=("content", d.digest), before=before, after=after)
        if d.kept:
            record(session, "task.twin_kept", subject=("content", d.digest), after=after)
    report.deleted = doomed
    report.adopted = [d.live for d in adopted]
    report.kept = sorted(i for d in decisions for i in d.kept)
    session.flush()


def _store(
    session: Session, ctx: ServiceContext, tasks: Sequence[StudioTask], project_id: int
) -> None:
    """Store the annotations of adopted twins (a webhook may have stored them already)."""
    shown = {p.prediction_id: p for t in tasks for p in t.predictions}
    annotations = [a for t in tasks for a in t.annotations]
    touched = store_annotations(
        session,
        annotations,
        guide=ctx.guide,
        shown=shown,
        report=IntakeReport(),
        project_id=project_id,
    )
    resolve_labels(session, touched)


def _touched(task: StudioTask | None) -> bool:
    """In Label Studio with an annotation, a draft or a skip on it."""
    return task is not None and bool(task.annotations or task.has_draft or task.cancelled)


def _ledgered(session: Session, project_id: int, hashes: set[str]) -> dict[str, int]:
    """The live task id the ledger holds for each of these content hashes."""
    found: dict[str, int] = {}
    for batch in chunked(sorted(hashes)):
        query = select(ContentTask.content_sha256, ContentTask.task_id).where(
            ContentTask.project_id == project_id,
            ContentTask.content_sha256.in_(batch),
            ContentTask.task_id.is_not(None),
        )
        found.update((digest, int(task_id)) for digest, task_id in session.execute(query))
    return found


def _watermark(session: Session, project_id: int) -> int:
    state = session.get(ReconcileState, project_id)
    return state.twins_checked_id if state is not None else 0


def _set_watermark(session: Session, project_id: int, task_id: int) -> None:
    state = session.get(ReconcileState, project_id)
    if state is None:
        state = ReconcileState(project_id=project_id)
        session.add(state)
    state.twins_checked_id = task_id
