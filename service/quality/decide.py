"""Decisions from the guide's thresholds, per task, per annotator and per batch.

A task whose agreement fails gets one more annotator in Label Studio (its overlap is raised)
unless every annotator has already labeled it, when it is left for review. An annotator
whose gold accuracy fails, or who keeps wrong suggestions (the anchoring audit), is flagged.
"""

from __future__ import annotations

from guides.schema import QualityThresholds
from quality.decisions import Decision, decide_batch_agreement, decide_rate, decide_tasks
from quality.ratings import RatingTable
from service.quality.schemas import Acceptance, AnnotatorRow, DecisionOut, num


def out(decision: Decision, subject: str, action: str | None = None) -> DecisionOut:
    return DecisionOut(
        scope=decision.scope,
        subject=subject,
        check=decision.check,
        verdict=decision.verdict.value,
        value=num(decision.value),
        threshold=decision.threshold,
        sample_size=decision.sample_size,
        lower=num(decision.lower),
        upper=num(decision.upper),
        action=action,
    )


def task_decisions(table: RatingTable, thresholds: QualityThresholds) -> list[DecisionOut]:
    """Tasks with two ratings or more; a failing one asks for another annotator."""
    everyone = len(table.annotator_ids)
    decisions = []
    for decision in decide_tasks(table.ratings, table.n_classes, thresholds):
        if decision.sample_size < 2:
            continue
        action = None
        if decision.verdict == "fail":
            if decision.sample_size < everyone:
                action = f"overlap raised to {decision.sample_size + 1}"
            else:
                action = "review: every annotator labeled it"
        decisions.append(out(decision, str(table.unit_ids[int(decision.subject)]), action))
    return decisions


def annotator_decisions(
    rows: list[AnnotatorRow], thresholds: QualityThresholds
) -> list[DecisionOut]:
    """Gold accuracy against `min_gold_accuracy`; flags the row of a failing annotator."""
    decisions = []
    for row in rows:
        decision = decide_rate(
            row.gold_correct,
            row.gold_attempted,
            thresholds.min_gold_accuracy,
            scope="annotator",
            subject=row.annotator,
            check="gold_accuracy",
        )
        failed = decision.verdict == "fail"
        row.flagged = failed or row.anchoring_flagged
        action = "flagged" if row.flagged else None
        if row.anchoring_flagged and not failed:
            action = "flagged: keeps wrong suggestions on gold tasks"
        decisions.append(out(decision, str(row.annotator), action))
    return decisions


def batch_decisions(
    table: RatingTable, by_version: list[Acceptance], thresholds: QualityThresholds, batch: str
) -> list[DecisionOut]:
    """Krippendorff's alpha of the batch, and the share of suggestions kept unchanged."""
    alpha = decide_batch_agreement(table.ratings, table.n_classes, thresholds, batch=batch)
    shown = sum(a.shown for a in by_version)
    accepted = sum(a.accepted for a in by_version)
    model = decide_rate(
        accepted,
        shown,
        thresholds.min_model_agreement,
        scope="batch",
        subject=batch,
        check="model_agreement",
    )
    return [out(alpha, batch), out(model, batch)]


def failing_tasks(decisions: list[DecisionOut]) -> list[tuple[int, int]]:
    """(task id, new overlap) of tasks that get another annotator."""
    return [
        (int(d.subject), d.sample_size + 1)
        for d in decisions
        if d.scope == "task" and d.action and d.action.startswith("overlap raised")
    ]


def passed(decisions: list[DecisionOut]) -> bool:
    """No batch or annotator check failed (failing tasks are handled, not a failed batch)."""
    return not any(d.verdict == "fail" and d.scope != "task" for d in decisions)
