"""Withdrawing waiting tasks from the annotators' queue, without ever losing an annotation.

Label Studio serves a project's tasks in id order (sequential sampling), which is the rank
order of the round that imported them. When the ranking moves on (a retrain, a new round
that should rank the waiting images anew), the tasks nobody has touched are withdrawn:
deleted from Label Studio, so they stop being served, and their images go back to the pool.

A task is touched, and kept, when the service stores an annotation for it or Label Studio
holds an annotation, a skip or a draft on it. The withdrawal is marked in the database
before Label Studio is asked to delete anything, so an annotation submitted in the moment
between the check and the deletion arrives by webhook and stays (see `intake.delete_tasks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from labeling.tasks import StudioTask
from service.audit import record
from service.context import ServiceContext
from service.core.orm import Annotation, DeletedTask, RoundItem, utcnow
from service.studio.intake import chunked
from service.studio.tables import ContentTask


@dataclass(frozen=True)
class WithdrawReport:
    """`withdrawn`: tasks deleted from the queue now; `kept`: waiting ones found touched."""

    withdrawn: int
    kept: int
    already_gone: int


def withdraw_waiting(
    session: Session, ctx: ServiceContext, project_id: int, *, round_ids: Sequence[int] | None
) -> WithdrawReport:
    """Withdraw the untouched tasks of these rounds (None: of every round); idempotent.

    Talks to Label Studio: call it outside an open transaction (it commits its own).
    """
    waiting = _waiting_items(session, round_ids)
    current = {t.task_id: t for t in ctx.gateway.tasks_by_id(project_id, _task_ids(waiting))}
    chosen = [item for item in waiting if _untouched(current.get(_task_id(item)))]
    gone = sum(1 for item in waiting if _task_id(item) not in current)
    now = utcnow()
    for item in chosen:
        item.withdrawn_at = now
    for round_id in sorted({item.round_id for item in chosen}):
        tasks = sorted(_task_id(item) for item in chosen if item.round_id == round_id)
        record(session, "task.withdrawn", subject=("round", round_id), after={"tasks": tasks})
    session.commit()  # marked before the deletion: a racing annotation is then kept

    pending = _withdrawn_not_deleted(session)  # this call's and any an earlier one left
    ctx.gateway.delete_tasks(project_id, [_task_id(item) for item in pending])
    _forget_tasks(session, pending)
    session.commit()
    return WithdrawReport(
        withdrawn=len(chosen), kept=len(waiting) - len(chosen) - gone, already_gone=gone
    )


def _waiting_items(session: Session, round_ids: Sequence[int] | None) -> list[RoundItem]:
    """Items sent as tasks, not withdrawn, not deleted, with no stored annotation."""
    annotated = exists().where(Annotation.task_id == RoundItem.task_id)
    query = (
        select(RoundItem)
        .where(
            RoundItem.task_id.is_not(None),
            RoundItem.withdrawn_at.is_(None),
            RoundItem.task_id.not_in(select(DeletedTask.task_id)),
            ~annotated,
        )
        .order_by(RoundItem.task_id)
    )
    if round_ids is not None:
        query = query.where(RoundItem.round_id.in_(list(round_ids)))
    return list(session.scalars(query))


def _withdrawn_not_deleted(session: Session) -> list[RoundItem]:
    """Items marked withdrawn whose task may still be in Label Studio (they keep its id)."""
    query = select(RoundItem).where(
        RoundItem.withdrawn_at.is_not(None), RoundItem.task_id.is_not(None)
    )
    return list(session.scalars(query))


def _forget_tasks(session: Session, items: Sequence[RoundItem]) -> None:
    """After the deletion: the tasks are gone, withdrawn, and the items hold no task.

    Label Studio on SQLite gives a deleted task's id to the next task created, so the items
    let go of the old id: nothing may later treat that new task as withdrawn.
    """
    task_ids = sorted({_task_id(item) for item in items})
    for batch in chunked(task_ids):
        known = session.scalars(select(DeletedTask).where(DeletedTask.task_id.in_(batch)))
        for row in known:
            row.withdrawn = True
            batch.remove(row.task_id)
        session.add_all(DeletedTask(task_id=task_id, withdrawn=True) for task_id in batch)
    for batch in chunked(task_ids):
        session.execute(
            update(ContentTask)
            .where(ContentTask.task_id.in_(batch))
            .values(task_id=None, withdrawn_at=utcnow())
        )
    for item in items:
        item.task_id = None


def _untouched(task: StudioTask | None) -> bool:
    """Still in Label Studio with no annotation, skip or draft on it."""
    return task is not None and not task.annotations and not task.has_draft and not task.cancelled


def _task_id(item: RoundItem) -> int:
    assert item.task_id is not None  # only items sent as tasks are read here
    return item.task_id


def _task_ids(items: Sequence[RoundItem]) -> list[int]:
    return [_task_id(item) for item in items]
