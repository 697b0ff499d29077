"""The agreement report: agreement, consensus, per-annotator scores and model acceptance.

Reads the latest live accepted answer per (task, annotator) under the guide in force
(`data.latest_answers`) and turns `quality`'s results into an `AgreementReport` (without
decisions: `decide.py` adds them).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from guides import Guide
from quality.agreement import cohen_kappa_pairwise, fleiss_kappa, krippendorff_alpha
from quality.agreement import percent_agreement as percent
from quality.annotators import (
    anchoring_audit,
    consensus_agreement,
    gold_accuracy,
    suggestion_acceptance,
)
from quality.consensus import dawid_skene, majority_vote
from quality.ratings import MISSING, RatingTable
from service.quality.data import Answer, rating_table, unit_gold
from service.quality.schemas import (
    Acceptance,
    AgreementStats,
    AnnotatorRow,
    ConsensusTask,
    PairKappa,
    Window,
    num,
)

FALSE_ALARMS = (
    "Agreement checks are not repeated significance tests: each report judges the current "
    "answers against the guide's thresholds, rates by a 95% Wilson interval (fail only when "
    "even its upper bound is below the threshold), so small samples are left undecided."
)


def agreement_stats(table: RatingTable) -> AgreementStats:
    """Percent agreement, Krippendorff's alpha, Fleiss' and pairwise Cohen's kappa."""
    ratings, n = table.ratings, table.n_classes
    alpha, fleiss, cohen = (
        krippendorff_alpha(ratings, n),
        fleiss_kappa(ratings, n),
        cohen_kappa_pairwise(ratings, n),
    )
    pairs = [
        PairKappa(
            first=int(table.annotator_ids[a]),
            second=int(table.annotator_ids[b]),
            kappa=num(cohen.kappa[a, b]),
            shared_tasks=int(cohen.n_overlap[a, b]),
        )
        for a in range(ratings.shape[1])
        for b in range(a + 1, ratings.shape[1])
    ]
    return AgreementStats(
        percent_agreement=num(percent(ratings, n).value),
        krippendorff_alpha=num(alpha.value),
        alpha_units=alpha.n_units,
        fleiss_kappa=num(fleiss.value),
        fleiss_units=fleiss.n_units,
        fleiss_raters=fleiss.raters_per_unit,
        cohen_mean=num(cohen.mean),
        cohen=pairs,
    )


def consensus_labels(table: RatingTable, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, support, tied)``, each ``(n_units,)``, by majority vote or Dawid-Skene."""
    vote = majority_vote(table.ratings, table.n_classes)
    if method != "dawid_skene":
        return vote.labels, vote.support, vote.tied
    fitted = dawid_skene(table.ratings, table.n_classes)
    support = fitted.posteriors.max(axis=1)
    return fitted.labels, support, np.zeros(len(fitted.labels), dtype=bool)


def consensus_tasks(
    answers: list[Answer], table: RatingTable, guide: Guide, method: str
) -> list[ConsensusTask]:
    labels, support, tied = consensus_labels(table, method)
    images = {a.task_id: a.image_id for a in answers}
    rated = (table.ratings != MISSING).sum(axis=1)
    return [
        ConsensusTask(
            task_id=int(task),
            image_id=images[int(task)],
            label=guide.label_names[int(labels[i])],
            support=num(support[i]),
            tied=bool(tied[i]),
            ratings=int(rated[i]),
        )
        for i, task in enumerate(table.unit_ids)
        if labels[i] != MISSING
    ]


def annotator_rows(
    answers: list[Answer], table: RatingTable, consensus: np.ndarray
) -> list[AnnotatorRow]:
    """Each annotator's gold accuracy, agreement with consensus, confusion and anchoring."""
    n = table.n_classes
    gold = gold_accuracy(table.ratings, unit_gold(answers, table), n)
    versus = consensus_agreement(table.ratings, consensus, n)
    column = {annotator: i for i, annotator in enumerate(table.annotator_ids)}
    audit = anchoring_audit(
        np.array([column[a.annotator] for a in answers], dtype=np.int64),
        np.array([a.label for a in answers], dtype=np.int64),
        np.array([a.shown for a in answers], dtype=np.int64),
        np.array([a.gold for a in answers], dtype=np.int64),
        n_annotators=len(column),
        n_classes=n,
    )
    rated = (table.ratings != MISSING).sum(axis=0)
    return [
        AnnotatorRow(
            annotator=int(annotator),
            answers=int(rated[i]),
            gold_correct=int(gold.correct[i]),
            gold_attempted=int(gold.attempted[i]),
            gold_accuracy=num(gold.accuracy[i]),
            consensus_agreed=int(versus.agreed[i]),
            consensus_compared=int(versus.compared[i]),
            consensus_agreement=num(versus.agreement[i]),
            suggestions_shown=int(audit.shown[i]),
            suggestions_accepted=int(audit.accepted[i]),
            wrong_suggestions_shown=int(audit.wrong_shown[i]),
            wrong_suggestions_accepted=int(audit.wrong_accepted[i]),
            anchoring_flagged=bool(audit.flagged[i]),
            flagged=bool(audit.flagged[i]),
            confusion=versus.confusion[i].tolist(),
        )
        for i, annotator in enumerate(table.annotator_ids)
    ]


def acceptance(answers: list[Answer], guide: Guide) -> tuple[list[Acceptance], list[Acceptance]]:
    """Suggestions kept unchanged, by model version and by suggested class (shown ones only)."""
    shown = [a for a in answers if a.shown != MISSING]
    if not shown:
        return [], []
    result = suggestion_acceptance(
        np.array([a.label for a in shown], dtype=np.int64),
        np.array([a.shown for a in shown], dtype=np.int64),
        [a.shown_version or "unknown" for a in shown],
        len(guide.labels),
    )
    by_version = [
        Acceptance(key=str(v), shown=int(s), accepted=int(k), rate=num(r))
        for v, s, k, r in zip(
            result.versions,
            result.shown.sum(axis=1),
            result.accepted.sum(axis=1),
            result.by_version,
            strict=True,
        )
    ]
    by_class = [
        Acceptance(key=name, shown=int(s), accepted=int(k), rate=num(r))
        for name, s, k, r in zip(
            guide.label_names,
            result.shown.sum(axis=0),
            result.accepted.sum(axis=0),
            result.by_class,
            strict=True,
        )
        if s > 0
    ]
    return by_version, by_class


def window_of(answers: list[Answer]) -> Window:
    times = [a.at if a.at.tzinfo else a.at.replace(tzinfo=UTC) for a in answers if a.at]
    return Window(start=min(times, default=None), end=max(times, default=None))


def table_of(answers: list[Answer], guide: Guide) -> RatingTable:
    return rating_table(answers, len(guide.labels))


def now() -> datetime:
    return datetime.now(UTC)
