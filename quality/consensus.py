"""One label per unit from several annotators: majority vote and Dawid-Skene.

Both read ``ratings: (n_units, n_annotators)`` (:mod:`quality.ratings`). A unit nobody rated
gets the label :data:`~quality.ratings.MISSING`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from quality.ratings import MISSING, category_counts, validate_ratings

_EPSILON = 1e-10
"""Floor of an annotator's probability of giving a label it gave at least once."""


@dataclass(frozen=True)
class MajorityVote:
    """``labels: (n_units,)``; ``votes: (n_units, n_classes)`` counts; ``tied: (n_units,)``
    whether the top count was shared (the tie-break then chose); ``support: (n_units,)``
    share of the unit's ratings that went to the label (NaN for unrated units)."""

    labels: np.ndarray
    votes: np.ndarray
    tied: np.ndarray
    support: np.ndarray


@dataclass(frozen=True)
class DawidSkene:
    """A fitted Dawid-Skene model.

    ``labels: (n_units,)`` most probable class (lowest index on ties); ``posteriors:
    (n_units, n_classes)``; ``priors: (n_classes,)``; ``confusion: (n_annotators, n_classes,
    n_classes)`` with ``confusion[a, true, given]`` = P(annotator ``a`` gives ``given`` |
    ``true``), rows summing to 1 for annotators with ratings; ``lower_bound``: the evidence
    lower bound per rating after each iteration.
    """

    labels: np.ndarray
    posteriors: np.ndarray
    priors: np.ndarray
    confusion: np.ndarray
    n_iter: int
    converged: bool
    lower_bound: tuple[float, ...]


def majority_vote(
    ratings: np.ndarray, n_classes: int, *, tie_break: np.ndarray | None = None
) -> MajorityVote:
    """The most frequent class of each unit of ``ratings: (n_units, n_annotators)``.

    Ties go to the tied class with the highest ``tie_break: (n_units, n_classes)`` score
    (for example the time of its latest vote, or the model's probability), then to the
    lowest class index; ``tied`` reports every unit where a tie had to be broken.
    """
    votes = category_counts(ratings, n_classes)
    if tie_break is None:
        secondary = np.zeros(votes.shape)
    else:
        secondary = np.asarray(tie_break, dtype=np.float64)
        if secondary.shape != votes.shape or not np.all(np.isfinite(secondary)):
            raise ValueError(f"expected finite tie_break of shape {votes.shape}")
    top = votes.max(axis=1, keepdims=True)
    at_top = (votes == top) & (top > 0)
    tied = at_top.sum(axis=1) > 1
    # Rank within the top by the secondary score; argmax keeps the lowest index on ties.
    labels = np.where(at_top, secondary, -np.inf).argmax(axis=1)
    rated = top[:, 0] > 0
    labels = np.where(rated, labels, MISSING)
    with np.errstate(invalid="ignore", divide="ignore"):
        support = np.where(rated, top[:, 0] / votes.sum(axis=1), np.nan)
    return MajorityVote(labels, votes, tied, support)


def dawid_skene(
    ratings: np.ndarray,
    n_classes: int,
    *,
    max_iter: int = 100,
    tol: float | None = 1e-5,
    known: np.ndarray | None = None,
) -> DawidSkene:
    """Dawid and Skene's (1979) EM over ``ratings: (n_units, n_annotators)``.

    Starts from the soft majority vote (each unit's vote shares), then alternates the
    M-step (priors; each annotator's confusion, floored at 1e-10 for labels it gave) and the
    E-step (posteriors). Stops when the evidence lower bound per rating gains less than
    ``tol`` or after ``max_iter`` iterations (always ``max_iter`` when ``tol`` is None).
    ``known: (n_units,)`` (class or MISSING) pins the posteriors of units with a known
    answer, such as gold tasks.
    """
    values = validate_ratings(ratings, n_classes)
    if max_iter < 1 or (tol is not None and not tol >= 0):
        raise ValueError(f"expected max_iter >= 1 and tol >= 0 or None, got {max_iter}, {tol}")
    pinned = _pinned(known, values.shape[0], n_classes)
    layout = _layout(values, n_classes)
    counts = category_counts(values, n_classes).astype(np.float64)
    posteriors = _pin(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), pinned)
    priors, confusion = _m_step(posteriors, layout)
    bounds: list[float] = []
    converged = False
    for _ in range(max_iter):
        posteriors = _pin(_e_step(priors, confusion, layout), pinned)
        priors, confusion = _m_step(posteriors, layout)
        bounds.append(_lower_bound(posteriors, priors, confusion, layout))
        if tol is not None and len(bounds) > 1 and bounds[-1] - bounds[-2] < tol:
            converged = True
            break
    posteriors[~layout.rated] = priors
    labels = np.where(layout.rated, posteriors.argmax(axis=1), MISSING)
    return DawidSkene(labels, posteriors, priors, confusion, len(bounds), converged, tuple(bounds))


@dataclass(frozen=True)
class _Layout:
    """The ratings as a list: ``units, annotators, given: (n_ratings,)``; ``gather:
    (n_units, n_ratings)`` sums per unit; ``scatter: (n_annotators * n_classes, n_ratings)``
    sums per (annotator, given label); ``used: (n_annotators, n_classes)`` labels each
    annotator gave; ``rated: (n_units,)`` units with a rating."""

    units: np.ndarray
    annotators: np.ndarray
    given: np.ndarray
    gather: sparse.csr_matrix
    scatter: sparse.csr_matrix
    used: np.ndarray
    rated: np.ndarray


def _layout(values: np.ndarray, n_classes: int) -> _Layout:
    n_units, n_annotators = values.shape
    units, annotators = np.nonzero(values != MISSING)
    given = values[units, annotators]
    ones, order = np.ones(units.size), np.arange(units.size)
    gather = sparse.csr_matrix((ones, (units, order)), shape=(n_units, units.size))
    cells = annotators * n_classes + given
    scatter = sparse.csr_matrix(
        (ones, (cells, order)), shape=(n_annotators * n_classes, units.size)
    )
    used = np.bincount(cells, minlength=n_annotators * n_classes).reshape(n_annotators, -1) > 0
    rated = np.bincount(units, minlength=n_units) > 0
    return _Layout(units, annotators, given, gather, scatter, used, rated)


def _pinned(known: np.ndarray | None, n_units: int, n_classes: int) -> np.ndarray | None:
    if known is None:
        return None
    answers = np.asarray(known)
    if answers.shape != (n_units,) or answers.dtype.kind not in "iu":
        raise ValueError(f"expected known as int class indices of shape ({n_units},)")
    if np.any((answers < MISSING) | (answers >= n_classes)):
        raise ValueError(f"expected known answers in [0, {n_classes}) or {MISSING}")
    return answers


def _pin(posteriors: np.ndarray, pinned: np.ndarray | None) -> np.ndarray:
    if pinned is not None:
        rows = np.nonzero(pinned != MISSING)[0]
        posteriors[rows] = 0.0
        posteriors[rows, pinned[rows]] = 1.0
    return posteriors


def _m_step(posteriors: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Priors ``(C,)`` and confusion ``(A, true C, given C)`` from the posteriors."""
    rated, used = layout.rated, layout.used
    n_annotators, n_classes = used.shape
    priors = posteriors[rated].mean(axis=0) if rated.any() else np.full(n_classes, 1 / n_classes)
    mass = (layout.scatter @ posteriors[layout.units]).reshape(n_annotators, n_classes, n_classes)
    mass = np.where(used[:, :, None], np.maximum(mass, _EPSILON), 0.0)  # [a, given, true]
    totals = mass.sum(axis=1, keepdims=True)
    confusion = np.divide(mass, totals, out=np.zeros_like(mass), where=totals > 0)
    return priors, confusion.transpose(0, 2, 1)


def _log_evidence(priors: np.ndarray, confusion: np.ndarray, layout: _Layout) -> np.ndarray:
    """``log p(true = c) + sum over the unit's ratings of log p(given | c)``: (n_units, C)."""
    with np.errstate(divide="ignore"):
        per_rating = np.log(confusion[layout.annotators, :, layout.given])
        return np.log(priors) + layout.gather @ per_rating


def _e_step(priors: np.ndarray, confusion: np.ndarray, layout: _Layout) -> np.ndarray:
    scores = _log_evidence(priors, confusion, layout)
    top = scores.max(axis=1, keepdims=True)
    weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    return weights / weights.sum(axis=1, keepdims=True)


def _lower_bound(
    posteriors: np.ndarray, priors: np.ndarray, confusion: np.ndarray, layout: _Layout
) -> float:
    """``(E_q[log p(ratings, true)] + H(q)) / n_ratings`` over rated units; q = 0 terms drop."""
    scores = _log_evidence(priors, confusion, layout)[layout.rated]
    q = posteriors[layout.rated]
    positive = q > 0
    total = (q[positive] * (scores[positive] - np.log(q[positive]))).sum()
    return float(total) / max(layout.units.size, 1)
