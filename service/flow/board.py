"""The flow board as a use case: read the flow from the database and lay it out (read only).

Columns partition the flow: **unlabeled** (usable pool images no task holds, including
those selected into a round that is not pushed yet), **suggested** (pushed tasks nobody has
answered: they show the model's suggestion), **in review**, **flagged** and **confirmed**
(see `stages.py`; confirmed also counts seed labels, which never needed a task).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.orm import utcnow
from service.flow import tasks as T
from service.flow.reports import latest_agreement, latest_drift
from service.flow.schemas import Board, Bottleneck, Column, ColumnName, OldestItem, Quality
from service.flow.stages import Sorted, needed_annotators, sort_tasks
from service.flow.timing import Done, bottleneck, stage, timing
from service.flow.wip import activity, in_progress, work_in_progress

RECENT_WINDOW_S = 3600.0  # the bottleneck compares rates over the last hour


def build_board(session: Session, ctx: ServiceContext, *, now: datetime | None = None) -> Board:
    """The board of the flow as it stands at `now` (default: the current time)."""
    now = now or utcnow()
    guide, settings = ctx.guide, ctx.settings
    verdicts, agreement = latest_agreement(session, settings.public_url)
    answered = T.answered_tasks(session)
    columns = sort_tasks(answered, needed_annotators(session, answered, guide.overlap), verdicts)
    pushed = T.push_times(session)
    open_count, first_open = T.suggested(session)
    loose, awaiting_push, first_loose = T.unlabeled(session)
    seeds, first_seed = T.seeded(session)
    locate = _Locator(ctx, pushed, now)
    done = [Done(pushed.get(t.round_id, t.first_at), t.last_at) for t in columns.confirmed]
    unfinished = in_progress(session, [t.task_id for t in columns.in_review + columns.flagged])
    return Board(
        generated_at=now,
        guide_version=str(guide.version),
        columns=[
            locate.column("unlabeled", loose, {"awaiting_push": awaiting_push}, first_loose),
            locate.column("suggested", open_count, {}, first_open),
            _answered_column(locate, "in_review", columns, lambda t: t.first_at),
            _confirmed_column(locate, columns, seeds, first_seed),
            _answered_column(locate, "flagged", columns, lambda t: t.last_at),
        ],
        wip=work_in_progress(
            guide,
            open_tasks=open_count,
            unfinished=unfinished,
            seen=activity(session, now=now),
            flagged=verdicts.flagged_annotators,
            emails=verdicts.emails,
            configured_annotators=len(settings.label_studio.annotators),
        ),
        timing=timing(done, now=now),
        bottleneck=_bottleneck(
            columns, pushed, T.tasks_per_round(session), awaiting_push, open_count, answered, now
        ),
        quality=Quality(agreement=agreement, drift=latest_drift(session, settings.public_url)),
    )


class _Locator:
    """Turns a found item into a column's oldest item: its age and a link to it."""

    def __init__(self, ctx: ServiceContext, pushed: dict[int, datetime], now: datetime) -> None:
        self._ctx, self._pushed, self._now = ctx, pushed, now

    def oldest(self, item: T.Located | None) -> OldestItem | None:
        if item is None:
            return None
        since = item.since
        if item.task_id is not None and item.round_id is not None:
            since = max(since, self._pushed.get(item.round_id, since))  # not before its push
        return OldestItem(
            image_id=item.image_id,
            task_id=item.task_id,
            since=since,
            age_s=max((self._now - since).total_seconds(), 0.0),
            url=self._url(item),
        )

    def column(
        self, name: ColumnName, count: int, detail: dict[str, int], item: T.Located | None
    ) -> Column:
        return Column(name=name, count=count, detail=detail, oldest=self.oldest(item))

    def _url(self, item: T.Located) -> str:
        if item.task_id is None or item.project_id is None:
            return self._ctx.media.url(item.image_id)  # the image itself, signed
        studio = self._ctx.settings.label_studio.url.rstrip("/")
        return f"{studio}/projects/{item.project_id}/data?task={item.task_id}"


def _located(task: T.AnsweredTask, since: datetime) -> T.Located:
    return T.Located(task.image_id, task.task_id, task.round_id, task.project_id, since)


def _answered_column(
    locate: _Locator,
    name: ColumnName,
    columns: Sorted,
    since: Callable[[T.AnsweredTask], datetime],
) -> Column:
    tasks: list[T.AnsweredTask] = getattr(columns, name)
    first = min(tasks, key=lambda t: (since(t), t.task_id), default=None)
    reasons = {
        "in_review": ("waiting_for_annotators", "consensus_pending"),
        "flagged": ("gold_failure", "disagreement"),
    }[name]
    detail = {reason: columns.reasons.get(reason, 0) for reason in reasons}
    item = _located(first, since(first)) if first else None
    return locate.column(name, len(tasks), detail, item)


def _confirmed_column(
    locate: _Locator, columns: Sorted, seeds: int, first_seed: T.Located | None
) -> Column:
    first = min(columns.confirmed, key=lambda t: (t.last_at, t.task_id), default=None)
    candidates = [first_seed] if first_seed else []
    if first is not None:
        candidates.append(_located(first, first.last_at))
    item = min(candidates, key=lambda c: c.since, default=None)
    detail = {"from_annotators": len(columns.confirmed), "seed": seeds}
    return locate.column("confirmed", len(columns.confirmed) + seeds, detail, item)


def _bottleneck(
    columns: Sorted,
    pushed: dict[int, datetime],
    per_round: dict[int, int],
    awaiting_push: int,
    open_count: int,
    answered: Sequence[T.AnsweredTask],
    now: datetime,
) -> Bottleneck:
    since = now - timedelta(seconds=RECENT_WINDOW_S)
    reviewed = [t for t in columns.confirmed + columns.flagged if t.annotators >= 2]
    stages = [
        stage(
            "push",
            awaiting_push,
            sum(per_round.get(r, 0) for r, at in pushed.items() if at >= since),
            RECENT_WINDOW_S,
        ),
        stage("annotate", open_count, sum(t.first_at >= since for t in answered), RECENT_WINDOW_S),
        stage(
            "review",
            len(columns.in_review),
            sum(t.last_at >= since for t in reviewed),
            RECENT_WINDOW_S,
        ),
    ]
    return bottleneck(stages, RECENT_WINDOW_S)
