"""Per-annotator scores: gold accuracy, agreement with consensus, model suggestions.

Matrix inputs follow :mod:`quality.ratings` (``ratings: (n_units, n_annotators)``).
Suggestion checks read one row per annotation, because the suggestion an annotator saw
belongs to that annotation (it changes with the model version): ``annotator, given, shown:
(n_annotations,)`` with ``shown`` = MISSING where no suggestion was shown.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from quality.ratings import MISSING, validate_ratings


@dataclass(frozen=True)
class GoldAccuracy:
    """``correct, attempted: (n_annotators,)`` counts on gold units; ``accuracy`` is NaN
    for annotators who labeled no gold unit."""

    correct: np.ndarray
    attempted: np.ndarray

    @property
    def accuracy(self) -> np.ndarray:
        return _rate(self.correct, self.attempted)


@dataclass(frozen=True)
class ConsensusAgreement:
    """Each annotator against the consensus on units with at least ``min_ratings`` ratings.

    ``agreed, compared: (n_annotators,)``; ``confusion: (n_annotators, n_classes,
    n_classes)`` counts with ``confusion[a, consensus, given]``.
    """

    agreed: np.ndarray
    compared: np.ndarray
    confusion: np.ndarray

    @property
    def agreement(self) -> np.ndarray:
        return _rate(self.agreed, self.compared)


@dataclass(frozen=True)
class SuggestionAcceptance:
    """Suggestions accepted unchanged, by model version and suggested class.

    ``accepted, shown: (len(versions), n_classes)`` counts of annotations.
    """

    versions: tuple[Hashable, ...]
    accepted: np.ndarray
    shown: np.ndarray

    @property
    def overall(self) -> float:
        total = int(self.shown.sum())
        return int(self.accepted.sum()) / total if total else float("nan")

    @property
    def by_class(self) -> np.ndarray:
        """``(n_classes,)`` acceptance rate of suggestions of each class."""
        return _rate(self.accepted.sum(axis=0), self.shown.sum(axis=0))

    @property
    def by_version(self) -> np.ndarray:
        """``(len(versions),)`` acceptance rate of each model version's suggestions."""
        return _rate(self.accepted.sum(axis=1), self.shown.sum(axis=1))


@dataclass(frozen=True)
class AnchoringAudit:
    """How readily each annotator takes the model's suggestion, set against gold accuracy.

    All fields ``(n_annotators,)``: ``accepted``/``shown`` suggestions kept unchanged out of
    those shown; ``gold_correct``/``gold_attempted``; ``wrong_accepted``/``wrong_shown``:
    on gold units, wrong suggestions kept out of wrong suggestions shown; ``flagged``:
    ``wrong_shown >= min_wrong_shown`` and the kept share above ``max_wrong_accepted``.
    """

    accepted: np.ndarray
    shown: np.ndarray
    gold_correct: np.ndarray
    gold_attempted: np.ndarray
    wrong_accepted: np.ndarray
    wrong_shown: np.ndarray
    flagged: np.ndarray
    max_wrong_accepted: float
    min_wrong_shown: int

    @property
    def acceptance(self) -> np.ndarray:
        return _rate(self.accepted, self.shown)

    @property
    def gold_accuracy(self) -> np.ndarray:
        return _rate(self.gold_correct, self.gold_attempted)

    @property
    def wrong_acceptance(self) -> np.ndarray:
        return _rate(self.wrong_accepted, self.wrong_shown)


def gold_accuracy(ratings: np.ndarray, gold: np.ndarray, n_classes: int) -> GoldAccuracy:
    """Accuracy of each annotator on gold units; ``gold: (n_units,)`` answer or MISSING."""
    values = validate_ratings(ratings, n_classes)
    answers = _labels(gold, (values.shape[0],), n_classes, "gold")
    on_gold = (values != MISSING) & (answers != MISSING)[:, None]
    correct = on_gold & (values == answers[:, None])
    return GoldAccuracy(correct.sum(axis=0), on_gold.sum(axis=0))


def consensus_agreement(
    ratings: np.ndarray, consensus: np.ndarray, n_classes: int, *, min_ratings: int = 2
) -> ConsensusAgreement:
    """Each annotator's labels against ``consensus: (n_units,)`` (MISSING where none).

    Only units with at least ``min_ratings`` ratings count: on a unit one annotator labeled
    alone the consensus is that annotator's own label.
    """
    values = validate_ratings(ratings, n_classes)
    labels = _labels(consensus, (values.shape[0],), n_classes, "consensus")
    enough = (values != MISSING).sum(axis=1) >= min_ratings
    units, annotators = np.nonzero((values != MISSING) & (enough & (labels != MISSING))[:, None])
    confusion = np.zeros((values.shape[1], n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (annotators, labels[units], values[units, annotators]), 1)
    agreed = np.trace(confusion, axis1=1, axis2=2)
    return ConsensusAgreement(agreed, confusion.sum(axis=(1, 2)), confusion)


def suggestion_acceptance(
    given: np.ndarray, shown: np.ndarray, versions: Sequence[Hashable], n_classes: int
) -> SuggestionAcceptance:
    """Acceptance of suggestions per model version and class, one entry per annotation.

    ``given, shown: (n_annotations,)`` the submitted label and the suggestion on screen
    (MISSING: none shown, the annotation is left out); ``versions``: the model version of
    that suggestion. An annotation accepts when it submits exactly the suggested class.
    """
    n = len(versions)
    submitted = _labels(given, (n,), n_classes, "given", allow_missing=False)
    suggested = _labels(shown, (n,), n_classes, "shown")
    keep = suggested != MISSING
    names = tuple(dict.fromkeys(v for v, k in zip(versions, keep, strict=True) if k))
    index = {name: i for i, name in enumerate(names)}
    rows = np.array([index[v] for v, k in zip(versions, keep, strict=True) if k], dtype=np.int64)
    accepted = np.zeros((len(names), n_classes), dtype=np.int64)
    total = np.zeros((len(names), n_classes), dtype=np.int64)
    np.add.at(total, (rows, suggested[keep]), 1)
    hit = submitted[keep] == suggested[keep]
    np.add.at(accepted, (rows[hit], suggested[keep][hit]), 1)
    return SuggestionAcceptance(names, accepted, total)


def anchoring_audit(
    annotator: np.ndarray,
    given: np.ndarray,
    shown: np.ndarray,
    gold: np.ndarray,
    *,
    n_annotators: int,
    n_classes: int,
    max_wrong_accepted: float = 0.5,
    min_wrong_shown: int = 3,
) -> AnchoringAudit:
    """Per-annotator anchoring audit over annotations ``(n_annotations,)``.

    ``gold``: the expected answer of the annotation's unit, MISSING off gold units. An
    annotator is flagged who kept more than ``max_wrong_accepted`` of the wrong suggestions
    shown on gold units, once at least ``min_wrong_shown`` were shown.
    """
    if not 0.0 <= max_wrong_accepted <= 1.0 or min_wrong_shown < 1:
        raise ValueError("expected max_wrong_accepted in [0, 1] and min_wrong_shown >= 1")
    n = (np.shape(annotator) or (0,))[0]
    who = _labels(annotator, (n,), n_annotators, "annotator", allow_missing=False)
    submitted = _labels(given, (n,), n_classes, "given", allow_missing=False)
    suggested, answers = (
        _labels(a, (n,), n_classes, k) for a, k in ((shown, "shown"), (gold, "gold"))
    )
    has_suggestion, on_gold = suggested != MISSING, answers != MISSING
    kept = has_suggestion & (submitted == suggested)
    wrong = has_suggestion & on_gold & (suggested != answers)

    def per_annotator(mask: np.ndarray) -> np.ndarray:
        return np.bincount(who[mask], minlength=n_annotators).astype(np.int64)

    wrong_accepted, wrong_shown = per_annotator(wrong & kept), per_annotator(wrong)
    flagged = (wrong_shown >= min_wrong_shown) & (wrong_accepted > max_wrong_accepted * wrong_shown)
    return AnchoringAudit(
        accepted=per_annotator(kept),
        shown=per_annotator(has_suggestion),
        gold_correct=per_annotator(on_gold & (submitted == answers)),
        gold_attempted=per_annotator(on_gold),
        wrong_accepted=wrong_accepted,
        wrong_shown=wrong_shown,
        flagged=flagged,
        max_wrong_accepted=max_wrong_accepted,
        min_wrong_shown=min_wrong_shown,
    )


def _rate(hits: np.ndarray, trials: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(trials > 0, hits / np.maximum(trials, 1), np.nan)


def _labels(
    values: np.ndarray,
    shape: tuple[int, ...],
    bound: int,
    name: str,
    *,
    allow_missing: bool = True,
) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != shape or (array.size and array.dtype.kind not in "iu"):
        raise ValueError(f"expected {name} as int indices of shape {shape}, got {array.shape}")
    array = array.astype(np.int64)
    low = MISSING if allow_missing else 0
    if array.size and (array.min() < low or array.max() >= bound):
        raise ValueError(f"expected {name} in [{low}, {bound}), got values outside it")
    return array
