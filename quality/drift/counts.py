"""Chi-square tests on class counts, with the small-count handling the drift checks share.

Pearson's chi-square is used rather than the G-test: it is closer to its asymptotic
distribution at moderate counts. Classes with no count on either side carry no information and
are dropped; classes whose expected count is below 5 (Cochran's rule) are pooled into one bin,
and that bin is merged with the next-smallest class while it is still below 5. With fewer
than two bins left there is nothing to test and the p-value is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class ChiSquare:
    """A chi-square statistic, its p-value and degrees of freedom, and the pooled classes."""

    statistic: float
    p_value: float
    dof: int
    pooled: tuple[int, ...]


def pooling_groups(expected: np.ndarray) -> tuple[list[list[int]], tuple[int, ...]]:
    """Bins of class indices for ``expected: (C,)`` counts, and the classes pooled.

    Classes with expected count 0 are left out; those below 5 share one bin, grown with the
    next-smallest class until it reaches 5 or no other bin is left.
    """
    order = [int(i) for i in np.argsort(expected, kind="stable") if expected[i] > 0]
    small = [i for i in order if expected[i] < MIN_EXPECTED]
    large = [i for i in order if expected[i] >= MIN_EXPECTED]
    if not small:
        return [[i] for i in large], ()
    pooled = list(small)
    while expected[pooled].sum() < MIN_EXPECTED and large:
        pooled.append(large.pop(0))
    groups = [pooled] + [[i] for i in large]
    return groups, tuple(sorted(pooled)) if len(pooled) > 1 else ()


def goodness_of_fit(observed: np.ndarray, probabilities: np.ndarray) -> ChiSquare:
    """Pearson chi-square of ``observed: (C,)`` counts against ``probabilities: (C,)``."""
    total = observed.sum()
    expected = probabilities * total
    groups, pooled = pooling_groups(expected)
    if len(groups) < 2 or total == 0:
        return ChiSquare(0.0, 1.0, 0, pooled)
    obs = np.array([observed[g].sum() for g in groups], dtype=np.float64)
    exp = np.array([expected[g].sum() for g in groups], dtype=np.float64)
    exp *= obs.sum() / exp.sum()
    result = stats.chisquare(obs, exp)
    return ChiSquare(float(result.statistic), float(result.pvalue), len(groups) - 1, pooled)


def homogeneity(reference: np.ndarray, new: np.ndarray) -> ChiSquare:
    """Pearson chi-square that ``reference: (C,)`` and ``new: (C,)`` counts share one law.

    Pooling follows the smaller of the two expected counts of each class.
    """
    column = reference + new
    grand = column.sum()
    if grand == 0 or reference.sum() == 0 or new.sum() == 0:
        return ChiSquare(0.0, 1.0, 0, ())
    smaller_side = min(reference.sum(), new.sum())
    groups, pooled = pooling_groups(column * smaller_side / grand)
    if len(groups) < 2:
        return ChiSquare(0.0, 1.0, 0, pooled)
    table = np.array([[side[g].sum() for g in groups] for side in (reference, new)])
    result = stats.chi2_contingency(table, correction=False)
    return ChiSquare(float(result.statistic), float(result.pvalue), int(result.dof), pooled)
