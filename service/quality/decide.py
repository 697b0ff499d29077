"""Decisions from the guide's thresholds, per task, per annotator and per batch.

A task whose agreement fails gets one more annotator in Label Studio (its overlap is raised)
unless every annotator has already labeled it, when it is left for review. An annotator
whose gold accuracy fails, or who keeps wrong suggestions (the anchoring audit), is flagged.
A check with nothing to judge is `no_data` with the reason, one with too little `undecided`
with the reason; `report_checks` takes each kind of check together (see `verdicts.py`).
"""

from __future__ import annotations

from guides.schema import QualityThresholds
from quality.decisions import Decision, decide_batch_agreement, decide_rate, decide_tasks
from quality.ratings import RatingTable
from service.quality.schemas import (
    Acceptance,
    AnnotatorRow,
    CheckVerdict,
    CheckVerdictName,
    DecisionOut,
    num,
)
from service.quality.verdicts import summarise

MIN_ALPHA_UNITS = 10  # tasks answered twice or more before the batch's alpha is judged
NO_GOLD = "no annotator has answered a gold task yet"


def out(
    decision: Decision,
    subject: str,
    action: str | None = None,
    *,
    no_data: str | None = None,
    undecided: str | None = None,
) -> DecisionOut:
    """The decision as stored; `no_data` (a reason) replaces a verdict that had nothing to
    judge, `undecided` explains one that had too little."""
    verdict: CheckVerdictName = decision.verdict.value  # type: ignore[assignment]
    reason = undecided if verdict == "undecided" else None
    if no_data is not None:
        verdict, reason = "no_data", no_data
    return DecisionOut(
        scope=decision.scope,
        subject=subject,
        check=decision.check,
        verdict=verdict,
        value=num(decision.value),
        threshold=decision.threshold,
        sample_size=decision.sample_size,
        lower=num(decision.lower),
        upper=num(decision.upper),
        action=action,
        reason=reason,
    )


def _rate_undecided(decision: Decision) -> str:
    return (
        f"{decision.sample_size} trials: the 95% interval "
        f"[{num(decision.lower) or 0:.2f}, {num(decision.upper) or 0:.2f}] holds the "
        f"threshold {decision.threshold:g}"
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
        no_data = (
            f"annotator {row.annotator} answered no gold task" if not row.gold_attempted else None
        )
        decisions.append(
            out(
                decision,
                str(row.annotator),
                action,
                no_data=no_data,
                undecided=_rate_undecided(decision),
            )
        )
    return decisions


def batch_decisions(
    table: RatingTable, by_version: list[Acceptance], thresholds: QualityThresholds, batch: str
) -> list[DecisionOut]:
    """Krippendorff's alpha of the batch, and the share of suggestions kept unchanged."""
    alpha = decide_batch_agreement(
        table.ratings, table.n_classes, thresholds, batch=batch, min_units=MIN_ALPHA_UNITS
    )
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
    no_suggestion = "no answer was given with a model suggestion on screen" if not shown else None
    return [
        out(alpha, batch, no_data=_no_overlap(table), undecided=_alpha_undecided(alpha)),
        out(model, batch, no_data=no_suggestion, undecided=_rate_undecided(model)),
    ]


def _no_overlap(table: RatingTable) -> str | None:
    """Why alpha has nothing to judge, or None when some task has two answers."""
    rated = (table.ratings >= 0).sum(axis=1)
    if (rated >= 2).any():
        return None
    if not len(table.unit_ids):
        return "no answers yet"
    return f"no task has answers from two annotators yet ({len(table.unit_ids)} answered once)"


def _alpha_undecided(decision: Decision) -> str:
    if decision.sample_size < MIN_ALPHA_UNITS:
        return (
            f"{decision.sample_size} tasks answered by two annotators or more; alpha is "
            f"judged from {MIN_ALPHA_UNITS}"
        )
    return "alpha is undefined: every answer on the shared tasks is one class"


def failing_tasks(decisions: list[DecisionOut]) -> list[tuple[int, int]]:
    """(task id, new overlap) of tasks that get another annotator."""
    return [
        (int(d.subject), d.sample_size + 1)
        for d in decisions
        if d.scope == "task" and d.action and d.action.startswith("overlap raised")
    ]


def report_checks(decisions: list[DecisionOut]) -> list[CheckVerdict]:
    """Agreement, gold accuracy and model agreement, each over its batch or annotator
    decisions (failing tasks are handled, not a failed batch)."""
    judged = [d for d in decisions if d.scope != "task"]

    def of(check: str) -> list[tuple[str, str | None]]:
        return [(d.verdict, d.reason) for d in judged if d.check == check]

    return [
        summarise("agreement", of("agreement"), no_data="no answers yet"),
        summarise("gold_accuracy", of("gold_accuracy"), no_data=NO_GOLD),
        summarise("model_agreement", of("model_agreement"), no_data="no suggestions shown"),
    ]
