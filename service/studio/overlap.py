"""How many annotators each pushed task gets: the guide's overlap policy, set per task.

The project leaves overlap to the service (one annotation per task, a 100% cohort), so Label
Studio never rearranges it when tasks are imported. Of a round's ordinary tasks, the guide's
`overlap.share_of_tasks` (a seeded, reproducible choice) get `annotators_per_task`
annotators; every gold task gets them too, since gold tasks score each annotator who sees
them. A task that fails its agreement check later gets one more (`raise_overlap`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from guides.schema import OverlapPolicy
from labeling.gateway import LabelStudioGateway
from service.core.orm import Image, RoundItem
from service.learning.gold import GOLD_SOURCE


def overlap_plan(
    task_ids: Sequence[int], gold: Sequence[bool], policy: OverlapPolicy, *, seed: int
) -> dict[int, int]:
    """Annotators per task for one round's tasks; tasks left out need one annotator.

    `gold: (len(task_ids),)` whether each task shows a gold image.
    """
    if len(task_ids) != len(gold):
        raise ValueError(f"expected one gold flag per task, got {len(gold)} for {len(task_ids)}")
    wanted = max(policy.annotators_per_task, 1)
    if wanted == 1:
        return {}
    ordinary = [task for task, is_gold in zip(task_ids, gold, strict=True) if not is_gold]
    count = round(policy.share_of_tasks * len(ordinary))
    chosen = np.random.default_rng(seed).permutation(len(ordinary))[:count]
    plan = {ordinary[i]: wanted for i in sorted(chosen.tolist())}
    plan.update((task, wanted) for task, is_gold in zip(task_ids, gold, strict=True) if is_gold)
    return plan


def apply_round_overlap(
    session: Session,
    gateway: LabelStudioGateway,
    items: Sequence[RoundItem],
    round_id: int,
    policy: OverlapPolicy,
) -> dict[int, int]:
    """Set the overlap of a round's tasks in Label Studio; returns the plan (task -> count)."""
    pushed = [item for item in items if item.task_id is not None]
    ids = [item.image_id for item in pushed]
    gold_ids = set(
        session.scalars(select(Image.id).where(Image.id.in_(ids), Image.source == GOLD_SOURCE))
    )
    plan = overlap_plan(
        [int(item.task_id or 0) for item in pushed],
        [item.image_id in gold_ids for item in pushed],
        policy,
        seed=round_id,
    )
    for task_id, overlap in plan.items():
        gateway.set_task_overlap(task_id, overlap)
    return plan


def raise_overlap(gateway: LabelStudioGateway, task_id: int, annotators: int) -> int:
    """Ask for one annotator more than `annotators` on `task_id`; returns the new overlap."""
    overlap = annotators + 1
    gateway.set_task_overlap(task_id, overlap)
    return overlap
