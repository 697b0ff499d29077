"""Pass or fail against the guide's :class:`~guides.schema.QualityThresholds`.

Each decision is a :class:`Decision` carrying the numbers behind it, ready for an audit
trail. Three verdicts: ``pass``, ``fail`` and ``undecided`` (too little data to say).

Small samples:
- Rates (gold accuracy, model agreement) are judged by a Wilson score interval at
  ``confidence`` (default 0.95): ``fail`` only when even the upper bound is below the
  threshold, ``pass`` when the observed rate reaches it, ``undecided`` in between or
  without data. So one wrong gold answer out of two never fails an annotator, while 1
  right out of 5 does (upper bound 0.62 < 0.8).
- A task needs 2 ratings; its agreement is chance-corrected as in Fleiss' kappa,
  ``(P_u - P_e) / (1 - P_e)`` with ``P_u`` the share of agreeing pairs on the unit and
  ``P_e = sum_c p_c^2`` from the batch's class shares.
- A batch needs ``min_units`` units with 2 or more ratings for its Krippendorff's alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from guides.schema import QualityThresholds
from quality.agreement import krippendorff_alpha
from quality.annotators import GoldAccuracy, SuggestionAcceptance
from quality.ratings import category_counts


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "undecided"


Scope = Literal["task", "annotator", "batch"]
Check = Literal["agreement", "gold_accuracy", "model_agreement"]


@dataclass(frozen=True)
class Decision:
    """One verdict and its evidence: ``value`` against ``threshold`` on ``sample_size``.

    ``subject`` is the unit or annotator index (or the caller's batch id); ``lower`` and
    ``upper`` bound ``value`` where an interval was used (NaN otherwise).
    """

    scope: Scope
    subject: int | str
    check: Check
    verdict: Verdict
    value: float
    threshold: float
    sample_size: int
    lower: float = math.nan
    upper: float = math.nan


def decide_rate(
    successes: int,
    trials: int,
    threshold: float,
    *,
    scope: Scope,
    subject: int | str,
    check: Check,
    confidence: float = 0.95,
) -> Decision:
    """A rate ``successes / trials`` against ``threshold``, judged by a Wilson interval."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"expected 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Decision(scope, subject, check, Verdict.UNDECIDED, math.nan, threshold, 0)
    low, high = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    value = successes / trials
    if high < threshold:
        verdict = Verdict.FAIL
    elif value >= threshold:
        verdict = Verdict.PASS
    else:
        verdict = Verdict.UNDECIDED
    return Decision(scope, subject, check, verdict, value, threshold, trials, low, high)


def decide_annotators(
    gold: GoldAccuracy, thresholds: QualityThresholds, *, confidence: float = 0.95
) -> list[Decision]:
    """Each annotator's gold accuracy against ``min_gold_accuracy``."""
    return [
        decide_rate(
            int(hits),
            int(trials),
            thresholds.min_gold_accuracy,
            scope="annotator",
            subject=annotator,
            check="gold_accuracy",
            confidence=confidence,
        )
        for annotator, (hits, trials) in enumerate(zip(gold.correct, gold.attempted, strict=True))
    ]


def decide_model_agreement(
    acceptance: SuggestionAcceptance,
    thresholds: QualityThresholds,
    *,
    batch: str,
    confidence: float = 0.95,
) -> Decision:
    """The share of annotations that kept the model's suggestion, vs ``min_model_agreement``."""
    return decide_rate(
        int(acceptance.accepted.sum()),
        int(acceptance.shown.sum()),
        thresholds.min_model_agreement,
        scope="batch",
        subject=batch,
        check="model_agreement",
        confidence=confidence,
    )


def task_agreement(ratings: np.ndarray, n_classes: int) -> np.ndarray:
    """Chance-corrected agreement per unit ``(n_units,)``; NaN below 2 ratings.

    NaN as well when every pairable rating of the batch is one class (``P_e = 1``).
    """
    counts = category_counts(ratings, n_classes)
    m = counts.sum(axis=1)
    pairable = m >= 2
    shares = counts[pairable].sum(axis=0)
    total = shares.sum()
    expected = float((shares / total) @ (shares / total)) if total else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = (counts * (counts - 1)).sum(axis=1) / (m * (m - 1))
    if expected >= 1.0:
        return np.full(m.shape, math.nan)
    return np.where(pairable, (observed - expected) / (1.0 - expected), math.nan)


def decide_tasks(
    ratings: np.ndarray, n_classes: int, thresholds: QualityThresholds
) -> list[Decision]:
    """Each unit's chance-corrected agreement against ``min_agreement``.

    ``undecided`` below 2 ratings (or when agreement is undefined): the task needs another
    annotator either way, as it does on ``fail``.
    """
    values = task_agreement(ratings, n_classes)
    sizes = (np.asarray(ratings) >= 0).sum(axis=1)
    decisions = []
    for unit, (value, size) in enumerate(zip(values.tolist(), sizes.tolist(), strict=True)):
        if math.isnan(value):
            verdict = Verdict.UNDECIDED
        else:
            verdict = Verdict.PASS if value >= thresholds.min_agreement else Verdict.FAIL
        threshold = thresholds.min_agreement
        decisions.append(Decision("task", unit, "agreement", verdict, value, threshold, size))
    return decisions


def decide_batch_agreement(
    ratings: np.ndarray,
    n_classes: int,
    thresholds: QualityThresholds,
    *,
    batch: str,
    min_units: int = 10,
) -> Decision:
    """Krippendorff's alpha of the batch against ``min_agreement``.

    ``undecided`` with fewer than ``min_units`` units rated twice or more, or when alpha is
    undefined (one class only). ``sample_size`` is the number of such units.
    """
    alpha = krippendorff_alpha(ratings, n_classes)
    threshold = thresholds.min_agreement
    if alpha.n_units < min_units or math.isnan(alpha.value):
        verdict = Verdict.UNDECIDED
    else:
        verdict = Verdict.PASS if alpha.value >= threshold else Verdict.FAIL
    return Decision("batch", batch, "agreement", verdict, alpha.value, threshold, alpha.n_units)
