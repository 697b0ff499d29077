"""Agreement between annotators on a ratings matrix ``(n_units, n_annotators)``.

Missing ratings are :data:`quality.ratings.MISSING`. Only units with at least two ratings
carry information about agreement; the others are ignored by every statistic here.
A statistic whose chance term is degenerate (every rating in one class) is undefined and
returned as NaN, never as a number that looks like a verdict.

Percent agreement and Krippendorff's alpha are computed from a few integer sums grouped by
the number of ratings ``m`` a unit has (:class:`PairSums`); :mod:`quality.incremental`
keeps the same sums up to date one annotation at a time, so both give identical values.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as _statsmodels_fleiss_kappa

from quality.ratings import MISSING, category_counts, validate_ratings


@dataclass(frozen=True)
class PairSums:
    """Integer sums over units, indexed by their number of ratings ``m``.

    ``units_by_m: (max_m + 1,)`` units with ``m`` ratings; ``agree_by_m: (max_m + 1,)`` the
    ordered pairs of ratings on those units that agree, ``sum_c n_uc (n_uc - 1)``;
    ``pairable: (n_classes,)`` ratings per class on units with ``m >= 2``.
    """

    units_by_m: np.ndarray
    agree_by_m: np.ndarray
    pairable: np.ndarray


@dataclass(frozen=True)
class PercentAgreement:
    """Mean over units with >= 2 ratings of the share of annotator pairs that agree."""

    value: float
    n_units: int
    n_ratings: int


@dataclass(frozen=True)
class KrippendorffAlpha:
    """Krippendorff's alpha (nominal): ``1 - observed / expected`` disagreement.

    ``n_pairable`` counts ratings on units with >= 2 ratings. ``value`` is NaN when the
    expected disagreement is zero (fewer than two classes among pairable ratings).
    """

    value: float
    observed_disagreement: float
    expected_disagreement: float
    n_units: int
    n_pairable: int


@dataclass(frozen=True)
class CohenKappaTable:
    """Cohen's kappa for every pair of annotators on the units both rated.

    ``kappa: (n_annotators, n_annotators)`` symmetric, NaN on the diagonal, for pairs with
    fewer than ``min_overlap`` shared units, and where kappa is undefined (both annotators
    gave one and the same class throughout). ``n_overlap``: shared units per pair.
    """

    kappa: np.ndarray
    n_overlap: np.ndarray

    @property
    def mean(self) -> float:
        """Light's kappa: the mean over defined pairs (NaN when none is defined)."""
        upper = self.kappa[np.triu_indices_from(self.kappa, k=1)]
        defined = upper[~np.isnan(upper)]
        return float(defined.mean()) if defined.size else math.nan


@dataclass(frozen=True)
class FleissKappa:
    """Fleiss' kappa over the units that have exactly ``raters_per_unit`` ratings.

    ``n_units_excluded`` counts units with >= 2 ratings but a different number of them.
    """

    value: float
    raters_per_unit: int
    n_units: int
    n_units_excluded: int


def pair_sums(ratings: np.ndarray, n_classes: int) -> PairSums:
    """The :class:`PairSums` of ``ratings: (n_units, n_annotators)``."""
    counts = category_counts(ratings, n_classes)
    m = counts.sum(axis=1)
    pairable = m >= 2
    size = max(int(m.max(initial=0)), 1) + 1
    units_by_m = np.bincount(m[pairable], minlength=size).astype(np.int64)
    agree_by_m = np.zeros(size, dtype=np.int64)
    np.add.at(agree_by_m, m[pairable], (counts[pairable] * (counts[pairable] - 1)).sum(axis=1))
    return PairSums(units_by_m, agree_by_m, counts[pairable].sum(axis=0))


def percent_from_sums(sums: PairSums) -> PercentAgreement:
    """:class:`PercentAgreement` from :class:`PairSums`; NaN when no unit has 2 ratings."""
    sizes = [k for k in range(2, sums.units_by_m.size) if sums.units_by_m[k]]
    n_units = sum(int(sums.units_by_m[k]) for k in sizes)
    share = sum(int(sums.agree_by_m[k]) / (k * (k - 1)) for k in sizes)
    value = share / n_units if n_units else math.nan
    return PercentAgreement(value, n_units, sum(k * int(sums.units_by_m[k]) for k in sizes))


def alpha_from_sums(sums: PairSums) -> KrippendorffAlpha:
    """:class:`KrippendorffAlpha` from :class:`PairSums` (nominal metric)."""
    n = int(sums.pairable.sum())
    n_units = int(sums.units_by_m[2:].sum())
    if n == 0:
        return KrippendorffAlpha(math.nan, math.nan, math.nan, n_units, n)
    agreeing = sum(
        int(sums.agree_by_m[k]) / (k - 1)
        for k in range(2, sums.units_by_m.size)
        if sums.units_by_m[k]
    )
    observed = (n - agreeing) / n
    spread = n * n - sum(int(c) * int(c) for c in sums.pairable)
    expected = spread / (n * (n - 1))
    value = 1.0 - (n - 1) * (n - agreeing) / spread if spread else math.nan
    return KrippendorffAlpha(value, observed, expected, n_units, n)


def percent_agreement(ratings: np.ndarray, n_classes: int) -> PercentAgreement:
    """Pairwise percent agreement of ``ratings: (n_units, n_annotators)``.

    Each unit with ``m >= 2`` ratings scores the share of its ``m (m - 1) / 2`` annotator
    pairs that gave the same class; the value is the mean of these shares over such units.
    """
    return percent_from_sums(pair_sums(ratings, n_classes))


def krippendorff_alpha(ratings: np.ndarray, n_classes: int) -> KrippendorffAlpha:
    """Krippendorff's alpha, nominal metric, of ``ratings: (n_units, n_annotators)``.

    Computed from the coincidence matrix: ``alpha = 1 - (n - 1) (n - sum_c o_cc) /
    (n^2 - sum_c n_c^2)`` with ``n`` pairable ratings and ``n_c`` of them in class ``c``.
    """
    return alpha_from_sums(pair_sums(ratings, n_classes))


def coincidence_matrix(ratings: np.ndarray, n_classes: int) -> np.ndarray:
    """Krippendorff's coincidence matrix ``(n_classes, n_classes)`` of ``ratings``.

    ``o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1)`` over units with ``m_u >= 2``;
    its row sums are the pairable ratings per class.
    """
    counts = category_counts(ratings, n_classes)
    m = counts.sum(axis=1)
    keep = m >= 2
    weights = 1.0 / (m[keep] - 1)
    c = counts[keep].astype(np.float64)
    return (c * weights[:, None]).T @ c - np.diag(c.T @ weights)


def cohen_kappa_pairwise(
    ratings: np.ndarray, n_classes: int, *, min_overlap: int = 2
) -> CohenKappaTable:
    """Cohen's kappa (scikit-learn's) of each annotator pair over the units both rated."""
    values = validate_ratings(ratings, n_classes)
    if min_overlap < 1:
        raise ValueError(f"expected min_overlap >= 1, got {min_overlap}")
    rated = values != MISSING
    n_annotators = values.shape[1]
    overlap = rated.T.astype(np.int64) @ rated.astype(np.int64)
    kappa = np.full((n_annotators, n_annotators), math.nan)
    for a in range(n_annotators):
        for b in range(a + 1, n_annotators):
            if overlap[a, b] < min_overlap:
                continue
            both = rated[:, a] & rated[:, b]
            kappa[a, b] = kappa[b, a] = _cohen(values[both, a], values[both, b], n_classes)
    return CohenKappaTable(kappa, overlap)


def _cohen(first: np.ndarray, second: np.ndarray, n_classes: int) -> float:
    # Chance agreement is 1 exactly when both gave one and the same class throughout.
    if np.all(first == first[0]) and np.all(second == first[0]):
        return math.nan
    return float(cohen_kappa_score(first, second, labels=np.arange(n_classes)))


def fleiss_kappa(
    ratings: np.ndarray, n_classes: int, *, raters_per_unit: int | None = None
) -> FleissKappa:
    """Fleiss' kappa (statsmodels') of ``ratings: (n_units, n_annotators)``.

    Fleiss' kappa needs the same number of ratings on every unit; with missing ratings it is
    computed over the units that have exactly ``raters_per_unit`` ratings (by default the
    most common count among units with >= 2, the larger on a tie) and the units left out are
    counted. Krippendorff's alpha uses every unit and is the statistic to prefer then.
    """
    counts = category_counts(ratings, n_classes)
    m = counts.sum(axis=1)
    pairable = m >= 2
    if raters_per_unit is None:
        tally = Counter(m[pairable].tolist())
        raters_per_unit = max(tally, key=lambda k: (tally[k], k)) if tally else 2
    if raters_per_unit < 2:
        raise ValueError(f"expected raters_per_unit >= 2, got {raters_per_unit}")
    used = m == raters_per_unit
    table = counts[used]
    n_excluded = int(np.count_nonzero(pairable & ~used))
    classes_seen = np.count_nonzero(table.sum(axis=0))
    value = float(_statsmodels_fleiss_kappa(table)) if classes_seen >= 2 else math.nan
    return FleissKappa(value, raters_per_unit, int(table.shape[0]), n_excluded)
