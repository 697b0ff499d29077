"""The guide's overlap policy per task, and how many gold items a round gets."""

from __future__ import annotations

import pytest

from guides.schema import OverlapPolicy
from labeling.studio_config import project_spec
from service.learning.gold import gold_count
from service.studio.overlap import overlap_plan


def test_overlap_follows_the_share_and_every_gold_task_gets_several_annotators() -> None:
    policy = OverlapPolicy(annotators_per_task=3, share_of_tasks=0.25)
    tasks = list(range(100, 124))
    gold = [task % 6 == 0 for task in tasks]  # 4 gold tasks, 20 ordinary
    plan = overlap_plan(tasks, gold, policy, seed=7)
    assert set(plan.values()) == {3}
    assert {t for t, g in zip(tasks, gold, strict=True) if g} <= set(plan)
    assert len(plan) == 4 + 5  # every gold task, and a quarter of the 20 ordinary ones
    assert overlap_plan(tasks, gold, policy, seed=7) == plan  # reproducible per round
    assert overlap_plan(tasks, gold, policy, seed=8) != plan


def test_one_annotator_per_task_needs_no_overlap_and_the_project_leaves_it_to_us(guide) -> None:
    assert overlap_plan([1, 2], [True, False], OverlapPolicy(), seed=1) == {}
    with pytest.raises(ValueError, match="one gold flag per task"):
        overlap_plan([1, 2], [True], OverlapPolicy(), seed=1)
    spec = project_spec(guide, title="t")
    assert (spec.maximum_annotations, spec.overlap_percentage) == (1, 100)


def test_gold_makes_up_the_configured_share_of_a_round() -> None:
    assert gold_count(90, 0.1) == 10  # 10 of 100 tasks
    assert gold_count(20, 0.0) == 0 and gold_count(0, 0.3) == 0
    with pytest.raises(ValueError, match="gold share"):
        gold_count(10, 1.0)
