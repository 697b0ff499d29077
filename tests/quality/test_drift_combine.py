"""Weighted Holm: plain Holm at equal weights, worked answers, family-wise error on nulls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from quality.drift.combine import holm


def test_equal_weights_are_plain_holm() -> None:
    rng = np.random.default_rng(11)
    p = rng.uniform(0, 0.2, (20, 5)) ** 2
    p[0, 1] = p[0, 3]  # a tie
    for row in p:
        plain = holm(row)
        np.testing.assert_allclose(holm(row, weights=np.full(5, 0.2)), plain, rtol=1e-12)
        np.testing.assert_allclose(plain, multipletests(row, method="holm")[1], rtol=1e-12)


def test_weighted_holm_worked_answers() -> None:
    """Hand-computed: order by p / w, scale by the weight still unrejected over w, cummax."""
    weights = [0.3, 0.2, 0.5]
    # p / w = 0.067, 0.15, 0.4: 0.02 * 1 / 0.3, 0.03 * 0.7 / 0.2, 0.2 * 0.5 / 0.5
    np.testing.assert_allclose(
        holm([0.02, 0.03, 0.2], weights=weights), [0.02 / 0.3, 0.105, 0.2], rtol=1e-12
    )
    # p / w = 0.133, 0.05, 1.8: first 0.01 / 0.2, then 0.04 * 0.8 / 0.3, then 0.9 * 0.5 / 0.5
    np.testing.assert_allclose(
        holm([0.04, 0.01, 0.9], weights=weights), [0.04 * 0.8 / 0.3, 0.05, 0.9], rtol=1e-12
    )
    # A test alone is rejected at p <= w * alpha: 0.025 with weight 0.5 (plain Holm: 0.075)
    assert holm([1.0, 1.0, 0.025], weights=weights)[2] == pytest.approx(0.05)
    assert holm([1.0, 1.0, 0.025])[2] == pytest.approx(0.075)
    assert holm([0.7, 0.9, 0.95], weights=weights).tolist() == [1.0, 1.0, 1.0]


def _correlated_p_values(rng: np.random.Generator, runs: int, rho: float) -> np.ndarray:
    """One-sided p-values ``(runs, 3)`` of three equicorrelated standard normal statistics."""
    cov = np.full((3, 3), rho) + (1 - rho) * np.eye(3)
    z = rng.multivariate_normal(np.zeros(3), cov, size=runs)
    return stats.norm.sf(z)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_family_wise_error_at_most_alpha_under_the_null(rho: float) -> None:
    """20,000 families of three null tests; one false hypothesis added does not raise it."""
    rng = np.random.default_rng(12)
    runs, alpha, weights = 20_000, 0.05, [0.3, 0.2, 0.5]
    limit = stats.binom.ppf(0.999, runs, alpha) / runs
    p = _correlated_p_values(rng, runs, rho)
    rejected = np.array([holm(row, weights=weights) <= alpha for row in p])
    assert rejected.any(axis=1).mean() <= limit
    if rho == 0.0:  # independent: any rejection iff some p_i <= w_i alpha
        exact = 1 - np.prod(1 - alpha * np.array(weights))
        assert abs(rejected.any(axis=1).mean() - exact) < 4 * np.sqrt(exact / runs)
    p[:, 2] = 1e-6  # the third hypothesis false and always rejected: the others' error stays
    rejected = np.array([holm(row, weights=weights) <= alpha for row in p])
    assert rejected[:, 2].all() and rejected[:, :2].any(axis=1).mean() <= limit


def test_bad_weights_raise() -> None:
    for weights in ([0.5, 0.5], [0.5, 0.6, -0.1], [0.0, 0.5, 0.5], [0.2, 0.2, 0.2]):
        with pytest.raises(ValueError, match="weights summing to 1"):
            holm([0.1, 0.2, 0.3], weights=weights)
