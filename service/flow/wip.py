"""Work in progress against the guide's `flow.wip_per_annotator`.

An annotator's work in progress is the items they answered that are not final yet: in
review (waiting for another annotator or for consensus) or flagged. The queue's is the tasks
nobody has answered yet, against the limit times the active annotators (the cap a push
keeps, `studio.queue_cap`). Over either limit is signalled, never refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guides import Guide
from service.core.orm import Annotation
from service.flow.schemas import AnnotatorWip, Wip
from service.studio.intake import as_utc, chunked
from service.studio.queue_cap import ACTIVE_WINDOW_S, queue_limit


def in_progress(session: Session, task_ids: Iterable[int]) -> dict[int, int]:
    """Per annotator, how many of these (unfinished) tasks they gave a live accepted answer."""
    counts: dict[int, int] = {}
    for batch in chunked(sorted(set(task_ids))):
        query = (
            select(Annotation.annotator, func.count(func.distinct(Annotation.task_id)))
            .where(
                Annotation.task_id.in_(batch),
                Annotation.deleted.is_(False),
                Annotation.status == "accepted",
                Annotation.annotator.is_not(None),
            )
            .group_by(Annotation.annotator)
        )
        for annotator, count in session.execute(query):
            counts[int(annotator)] = counts.get(int(annotator), 0) + int(count)
    return counts


def activity(session: Session, *, now: datetime) -> dict[int, tuple[int, datetime | None]]:
    """Per annotator: live answers within the active window, and their latest answer."""
    made = func.coalesce(Annotation.studio_created_at, Annotation.synced_at)
    since = now - timedelta(seconds=ACTIVE_WINDOW_S)
    query = (
        select(Annotation.annotator, func.count(), func.max(made))
        .where(Annotation.deleted.is_(False), Annotation.annotator.is_not(None), made >= since)
        .group_by(Annotation.annotator)
    )
    latest = (
        select(Annotation.annotator, func.max(made))
        .where(Annotation.deleted.is_(False), Annotation.annotator.is_not(None))
        .group_by(Annotation.annotator)
    )
    recent_counts = {int(a): int(n) for a, n, _ in session.execute(query)}
    return {int(a): (recent_counts.get(int(a), 0), as_utc(at)) for a, at in session.execute(latest)}


def work_in_progress(
    guide: Guide,
    *,
    open_tasks: int,
    unfinished: dict[int, int],
    seen: dict[int, tuple[int, datetime | None]],
    flagged: frozenset[int],
    emails: dict[int, str],
    configured_annotators: int,
) -> Wip:
    """The board's WIP block from the counts above; annotators ordered by id."""
    limit = guide.flow.wip_per_annotator
    active = sum(recent > 0 for recent, _ in seen.values())
    queue = queue_limit(guide, active, configured_annotators)
    rows = [
        AnnotatorWip(
            annotator=annotator,
            email=emails.get(annotator),
            in_progress=unfinished.get(annotator, 0),
            answers_recent=seen.get(annotator, (0, None))[0],
            last_answer_at=seen.get(annotator, (0, None))[1],
            flagged=annotator in flagged,
            over_limit=limit is not None and unfinished.get(annotator, 0) > limit,
        )
        for annotator in sorted(set(seen) | set(unfinished))
    ]
    return Wip(
        limit_per_annotator=limit,
        active_window_s=ACTIVE_WINDOW_S,
        active_annotators=active,
        open_tasks=open_tasks,
        queue_limit=queue,
        queue_over_limit=queue is not None and open_tasks > queue,
        annotators=rows,
    )
