"""Which column each answered task is in, from its answers, its overlap and the latest report.

In order, an answered task is
1. **flagged** when an answer on a gold image misses the expected label (`gold_failure`), or
   the latest agreement report failed it with every annotator in and no answer came since
   (`disagreement`: left to a person);
2. **in review** while it has fewer annotators than it needs: the overlap its round's plan
   gave it, or the one a failed check raised it to (`waiting_for_annotators`);
3. **in review** while its annotators disagree and no report passed it since its last answer
   (`consensus_pending`);
4. **confirmed** otherwise: every answer it needs is in and they agree (or a check passed it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from guides.schema import OverlapPolicy
from service.core.orm import Image, Round, RoundItem
from service.flow.memo import Memo, database_of
from service.flow.reports import TaskVerdicts
from service.flow.tasks import AnsweredTask
from service.learning.gold import GOLD_SOURCE
from service.studio.overlap import overlap_plan

_PLANS = Memo(size=1024)


@dataclass
class Sorted:
    """Answered tasks by column, and why each non-confirmed one is where it is."""

    in_review: list[AnsweredTask] = field(default_factory=list)
    flagged: list[AnsweredTask] = field(default_factory=list)
    confirmed: list[AnsweredTask] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, column: str, task: AnsweredTask, reason: str | None = None) -> None:
        getattr(self, column).append(task)
        if reason is not None:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


def sort_tasks(
    tasks: Iterable[AnsweredTask], needed: Mapping[int, int], verdicts: TaskVerdicts
) -> Sorted:
    """Columns of `tasks`; `needed` maps a task to the annotators its plan gave it (else 1)."""
    out = Sorted()
    for task in tasks:
        judged = verdicts.at is not None and task.last_at <= verdicts.at
        wanted = max(needed.get(task.task_id, 1), verdicts.raised.get(task.task_id, 0))
        if task.gold_wrong > 0:
            out.add("flagged", task, "gold_failure")
        elif judged and task.task_id in verdicts.review:
            out.add("flagged", task, "disagreement")
        elif task.annotators < wanted:
            out.add("in_review", task, "waiting_for_annotators")
        elif task.labels > 1 and not (judged and task.task_id in verdicts.passed):
            out.add("in_review", task, "consensus_pending")
        else:
            out.add("confirmed", task)
    return out


def needed_annotators(
    session: Session, tasks: Iterable[AnsweredTask], policy: OverlapPolicy
) -> dict[int, int]:
    """Annotators each task's round plan gave it, for tasks that have fewer than that.

    The plan is recomputed exactly as the push made it (`studio.overlap.overlap_plan` over
    the round's pushed items in rank order, seeded by the round id), under the guide in force
    now; each pushed round's plan is computed once per process.
    """
    wanted = policy.annotators_per_task
    if wanted <= 1:
        return {}
    short = [task for task in tasks if task.annotators < wanted]
    needed: dict[int, int] = {}
    for round_id in sorted({task.round_id for task in short}):
        needed.update(_plan(session, round_id, policy))
    return {task.task_id: needed[task.task_id] for task in short if task.task_id in needed}


def _plan(session: Session, round_id: int, policy: OverlapPolicy) -> dict[int, int]:
    status = session.scalar(select(Round.status).where(Round.id == round_id))

    def make() -> dict[int, int]:
        rows = session.execute(
            select(RoundItem.task_id, Image.source == GOLD_SOURCE)
            .join(Image, Image.id == RoundItem.image_id)
            .where(RoundItem.round_id == round_id, RoundItem.task_id.is_not(None))
            .order_by(RoundItem.rank)
        ).all()
        tasks = [int(task) for task, _ in rows]
        return overlap_plan(tasks, [bool(gold) for _, gold in rows], policy, seed=round_id)

    if status != "pushed":  # still gaining tasks: nothing to keep
        return make()
    key = (database_of(session), round_id, policy.annotators_per_task, policy.share_of_tasks)
    return _PLANS.get(key, make)
