"""Lead time, throughput over time, and the bottleneck: pure functions over times and counts.

Lead time is from the push of an item's task to its confirmation (the answer that completed
it); throughput counts confirmed items per hour or day. Buckets are aligned to whole hours
and days (UTC) and the last one holds `now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from service.flow.schemas import Bottleneck, Bucket, Stage, StageName, Timing

HOUR_S, DAY_S = 3600, 86_400
HOURS, DAYS = 24, 14
RULE = (
    "the stage whose queue would take longest to clear at its rate over the recent window "
    "(Little's law: wait = queue / rate); a queue with nothing done in that window is "
    "stalled and comes first, the larger queue first; no bottleneck while every queue is empty"
)


@dataclass(frozen=True)
class Done:
    """One confirmed item: when its task was pushed and when it was confirmed (UTC)."""

    pushed_at: datetime
    confirmed_at: datetime

    @property
    def lead_time_s(self) -> float:
        return max((self.confirmed_at - self.pushed_at).total_seconds(), 0.0)


def buckets(done: Sequence[Done], *, now: datetime, width_s: int, count: int) -> list[Bucket]:
    """`count` buckets of `width_s` seconds, oldest first, the last one holding `now`."""
    if width_s < 1 or count < 1:
        raise ValueError(f"expected a width and count >= 1, got {width_s} and {count}")
    last = int(now.timestamp()) // width_s * width_s
    first = last - (count - 1) * width_s
    leads: list[list[float]] = [[] for _ in range(count)]
    for item in done:
        index = (int(item.confirmed_at.timestamp()) - first) // width_s
        if 0 <= index < count:
            leads[index].append(item.lead_time_s)
    return [
        Bucket(
            start=datetime.fromtimestamp(first + i * width_s, UTC),
            confirmed=len(values),
            lead_time_median_s=float(np.median(values)) if values else None,
        )
        for i, values in enumerate(leads)
    ]


def timing(done: Sequence[Done], *, now: datetime) -> Timing:
    """Lead-time percentiles over the last `DAYS` days and throughput series."""
    daily = buckets(done, now=now, width_s=DAY_S, count=DAYS)
    window = [d.lead_time_s for d in done if d.confirmed_at >= daily[0].start]
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    return Timing(
        lead_time_median_s=float(np.median(window)) if window else None,
        lead_time_p90_s=float(np.percentile(window, 90)) if window else None,
        throughput_last_hour=sum(hour_ago < d.confirmed_at <= now for d in done),
        throughput_last_day=sum(day_ago < d.confirmed_at <= now for d in done),
        hourly=buckets(done, now=now, width_s=HOUR_S, count=HOURS),
        daily=daily,
    )


def stage(name: StageName, queue: int, done_recent: int, window_s: float) -> Stage:
    """A stage's queue and recent exits, with its expected wait by Little's law."""
    if queue < 0 or done_recent < 0 or window_s <= 0:
        raise ValueError(
            f"expected counts >= 0 and a window > 0, got {queue}, {done_recent}, {window_s}"
        )
    stalled = queue > 0 and done_recent == 0
    if queue == 0:
        wait: float | None = 0.0
    else:
        wait = None if stalled else queue * window_s / done_recent
    return Stage(stage=name, queue=queue, done_recent=done_recent, wait_s=wait, stalled=stalled)


def bottleneck(stages: Sequence[Stage], window_s: float) -> Bottleneck:
    """The stage `RULE` names among `stages` (None while every queue is empty)."""
    busy = [s for s in stages if s.queue > 0]

    def weight(s: Stage) -> tuple[bool, float, int]:
        return (s.stalled, s.wait_s or 0.0, s.queue)

    worst = max(busy, key=weight) if busy else None
    return Bottleneck(
        stage=worst.stage if worst else None,
        rule=RULE,
        recent_window_s=window_s,
        stages=list(stages),
    )
