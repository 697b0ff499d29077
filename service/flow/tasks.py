"""What the board reads: one aggregate row per answered task, and counts of the other columns.

Every query aggregates in the database; only answered tasks come back one row each (their
classification needs the overlap plan and the latest report, see `stages.py`). A task holds
its image while it waits or has a live accepted answer (as the pool sees it: a task whose
live answers are all skipped or rejected, or a deleted task, lets the image go).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, String, and_, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from service.audit.tables import AuditEntry
from service.core.orm import Annotation, DeletedTask, Image, Round, RoundItem
from service.learning.gold import GOLD_SOURCE
from service.quality.tables import GoldAnswer
from service.studio.intake import as_utc
from service.studio.queue_cap import open_tasks_query

PUSHED_ACTION = "task.pushed"


class AnsweredTask(NamedTuple):
    """A held task with live accepted answers; times are when answers were made (UTC).

    A named tuple: one is built per answered task, and tuples build fastest.
    """

    task_id: int
    image_id: int
    round_id: int
    project_id: int | None
    annotators: int  # distinct annotators among the live accepted answers
    labels: int  # distinct labels among them
    gold_wrong: int  # answers on a gold image that miss its expected label
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class Located:
    """One item found as a column's oldest: its image, task and since when."""

    image_id: int
    task_id: int | None
    round_id: int | None
    project_id: int | None
    since: datetime


def _made() -> ColumnElement[datetime]:
    return func.coalesce(Annotation.studio_created_at, Annotation.synced_at)


def _not_deleted() -> ColumnElement[bool]:
    return RoundItem.task_id.not_in(select(DeletedTask.task_id))


def answered_tasks(session: Session) -> list[AnsweredTask]:
    """Every undeleted task with at least one live accepted answer."""
    wrong = case(
        (
            and_(
                GoldAnswer.expected_label.is_not(None),
                Annotation.label != GoldAnswer.expected_label,
            ),
            1,
        ),
        else_=0,
    )
    who = func.coalesce(Annotation.annotator, -Annotation.studio_annotation_id)
    per_task = (
        select(
            Annotation.task_id.label("task_id"),
            func.count(func.distinct(who)).label("annotators"),
            func.count(func.distinct(Annotation.label)).label("labels"),
            func.sum(wrong).label("gold_wrong"),
            type_coerce(func.min(_made()), String).label("first_at"),
            type_coerce(func.max(_made()), String).label("last_at"),
        )
        .outerjoin(GoldAnswer, GoldAnswer.image_id == Annotation.image_id)
        .where(Annotation.deleted.is_(False), Annotation.status == "accepted")
        .group_by(Annotation.task_id)
        .subquery()
    )
    first_item = (  # a task reused by a later round (same content) counts once, from its push
        select(RoundItem.task_id, func.min(RoundItem.id).label("item_id"))
        .where(RoundItem.task_id.is_not(None))
        .group_by(RoundItem.task_id)
        .subquery()
    )
    query = (
        select(per_task, RoundItem.image_id, RoundItem.round_id, Round.project_id)
        .join(first_item, first_item.c.task_id == per_task.c.task_id)
        .join(RoundItem, RoundItem.id == first_item.c.item_id)
        .join(Round, Round.id == RoundItem.round_id)
        .where(_not_deleted())
    )
    return [
        AnsweredTask(task, image, round_id, project, who, labels, wrong or 0, _at(first), _at(last))
        for task, who, labels, wrong, first, last, image, round_id, project in session.execute(
            query
        ).tuples()
    ]


def push_times(session: Session) -> dict[int, datetime]:
    """When each pushed round's tasks went out: its first `task.pushed` audit entry.

    A round pushed before the audit trail existed falls back to when it was selected.
    """
    audited = select(AuditEntry.subject_id, func.min(AuditEntry.at)).where(
        AuditEntry.action == PUSHED_ACTION, AuditEntry.subject_type == "round"
    )
    times = {
        int(subject): _utc(at)
        for subject, at in session.execute(audited.group_by(AuditEntry.subject_id))
        if subject.isdigit()
    }
    pushed = select(Round.id, Round.created_at).where(Round.project_id.is_not(None))
    for round_id, created in session.execute(pushed):
        times.setdefault(round_id, _utc(created))
    return times


def tasks_per_round(session: Session) -> dict[int, int]:
    """How many tasks each round has in Label Studio."""
    query = (
        select(RoundItem.round_id, func.count())
        .where(RoundItem.task_id.is_not(None))
        .group_by(RoundItem.round_id)
    )
    return {round_id: int(count) for round_id, count in session.execute(query)}


def suggested(session: Session) -> tuple[int, Located | None]:
    """Open tasks (pushed, nobody answered yet) and the one of the earliest round."""
    open_ids = open_tasks_query()
    listed = open_ids.subquery()
    count = int(session.scalar(select(func.count(func.distinct(listed.c.task_id)))) or 0)
    first = session.execute(
        select(RoundItem.image_id, RoundItem.task_id, Round.id, Round.project_id, Round.created_at)
        .join(Round, Round.id == RoundItem.round_id)
        .where(RoundItem.task_id.in_(open_ids))
        .order_by(Round.created_at, Round.id, RoundItem.rank)
        .limit(1)
    ).first()
    return count, (
        Located(first[0], first[1], first[2], first[3], _utc(first[4])) if first else None
    )


def _held_images() -> Select[tuple[int]]:
    """Images of undeleted tasks that nobody answered yet or that have an accepted answer."""
    live = Annotation.deleted.is_(False)
    answered = select(Annotation.task_id).where(live)
    accepted = select(Annotation.task_id).where(live, Annotation.status == "accepted")
    return select(RoundItem.image_id).where(
        RoundItem.task_id.is_not(None),
        or_(RoundItem.task_id.not_in(answered), RoundItem.task_id.in_(accepted)),
        _not_deleted(),
    )


def unlabeled(session: Session) -> tuple[int, int, Located | None]:
    """Usable pool images without a label that no task holds: count, awaiting a push, oldest."""
    where = (
        Image.label.is_(None),
        Image.unusable_reason.is_(None),
        Image.source != GOLD_SOURCE,
        Image.id.not_in(_held_images()),
    )
    first = session.execute(  # one scan: the oldest row, and the count over all of them
        select(Image.id, Image.registered_at, func.count().over())
        .where(*where)
        .order_by(Image.registered_at, Image.id)
        .limit(1)
    ).first()
    count = int(first[2]) if first else 0
    oldest = Located(first[0], None, None, None, _utc(first[1])) if first else None
    waiting = (
        select(func.count(func.distinct(RoundItem.image_id)))
        .join(Round, Round.id == RoundItem.round_id)
        .join(Image, Image.id == RoundItem.image_id)
        .where(RoundItem.task_id.is_(None), Round.status != "pushed", *where)
    )
    return count, int(session.scalar(waiting) or 0), oldest


def seeded(session: Session) -> tuple[int, Located | None]:
    """Images whose label was imported as a seed (confirmed without a task) and the first."""
    where = (Image.label.is_not(None), Image.label_source == "seed")
    count = int(session.scalar(select(func.count()).select_from(Image).where(*where)) or 0)
    first = session.execute(
        select(Image.id, func.coalesce(Image.labeled_at, Image.registered_at))
        .where(*where)
        .order_by(func.coalesce(Image.labeled_at, Image.registered_at), Image.id)
        .limit(1)
    ).first()
    return count, (Located(first[0], None, None, None, _utc(first[1])) if first else None)


def _at(value: str | datetime) -> datetime:
    """A timestamp read as text (SQLite) or as a datetime (PostgreSQL), in UTC.

    `fromisoformat` parses SQLite's stored text many times faster than the generic
    DateTime result processor, which matters for one row per answered task.
    """
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _utc(moment: datetime | None) -> datetime:
    value = as_utc(moment)
    if value is None:
        raise ValueError("expected a timestamp, got None")
    return value
