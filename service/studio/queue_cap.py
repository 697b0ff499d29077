"""The queue cap: how many open tasks the guide's WIP limit lets the service keep in Label Studio.

Label Studio Community assigns tasks to nobody: every annotator pulls from the project's one
queue. The service therefore caps that queue: at most `flow.wip_per_annotator` times the
number of active annotators may wait for their first answer. `release_budget` says how many
more tasks a push may open now; the rest of a round waits until answers come in.

An open task is a pushed, undeleted task without any live annotation. An active annotator
answered within `ACTIVE_WINDOW_S`; while nobody has, the configured annotator accounts count
(at least one), so a first round is not held back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from guides import Guide
from service.core.orm import Annotation, DeletedTask, RoundItem, utcnow

ACTIVE_WINDOW_S = 86_400
# The status of a round whose tasks the cap holds back in part (after `pushing`).
RELEASING = "releasing"


def open_tasks_query() -> Select[tuple[int]]:
    """Task ids of pushed, undeleted tasks that nobody has answered (or skipped) yet."""
    answered = select(Annotation.task_id).where(Annotation.deleted.is_(False))
    return select(RoundItem.task_id).where(
        RoundItem.task_id.is_not(None),
        RoundItem.task_id.not_in(answered),
        RoundItem.task_id.not_in(select(DeletedTask.task_id)),
    )


def open_task_count(session: Session) -> int:
    """How many tasks wait for their first answer in Label Studio."""
    listed = open_tasks_query().subquery()  # a task reused by two rounds counts once
    return int(session.scalar(select(func.count(func.distinct(listed.c.task_id)))) or 0)


def active_annotators(
    session: Session, *, now: datetime | None = None, window_s: float = ACTIVE_WINDOW_S
) -> int:
    """Distinct annotators with a live answer made within `window_s` before `now`."""
    since = (now or utcnow()) - timedelta(seconds=window_s)
    made = func.coalesce(Annotation.studio_created_at, Annotation.synced_at)
    query = select(func.count(func.distinct(Annotation.annotator))).where(
        Annotation.deleted.is_(False), Annotation.annotator.is_not(None), made >= since
    )
    return int(session.scalar(query) or 0)


def queue_limit(guide: Guide, active: int, configured: int) -> int | None:
    """Open tasks allowed: the WIP limit per annotator times the annotators (None: no limit)."""
    limit = guide.flow.wip_per_annotator
    if limit is None:
        return None
    return limit * max(active or configured, 1)


def release_budget(
    session: Session, guide: Guide, *, configured_annotators: int, now: datetime | None = None
) -> int | None:
    """How many more tasks a push may open now (None: no limit; never negative)."""
    limit = queue_limit(guide, active_annotators(session, now=now), configured_annotators)
    if limit is None:
        return None
    return max(limit - open_task_count(session), 0)
