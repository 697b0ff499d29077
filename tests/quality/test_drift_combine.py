"""Weighted Holm and Sidak-Holm: references, worked answers, error and uniformity on nulls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from quality.drift.combine import holm, sidak_holm


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


def test_equal_weight_sidak_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(13)
    p = rng.uniform(0, 0.3, (20, 5)) ** 2
    p[0, 1] = p[0, 3]  # a tie
    for row in p:
        reference = multipletests(row, method="holm-sidak")[1]
        np.testing.assert_allclose(sidak_holm(row), reference, rtol=1e-12)
        np.testing.assert_allclose(sidak_holm(row, weights=np.full(5, 0.2)), reference, rtol=1e-12)


def test_weighted_sidak_holm_worked_answers() -> None:
    """Order by -log(1 - p) / w; step j tests 1 - (1 - p) ** (weight left / w); cummax."""
    weights = [0.3, 0.2, 0.5]
    first = 1 - 0.98 ** (1 / 0.3)  # 0.02 with weight 0.3 goes first, all the weight left
    second = max(first, 1 - 0.97 ** (0.7 / 0.2))  # then 0.03 with 0.7 of the weight left
    np.testing.assert_allclose(
        sidak_holm([0.02, 0.03, 0.2], weights=weights), [first, second, 0.2], rtol=1e-12
    )
    # A test alone is rejected at p <= 1 - (1 - alpha) ** w: above Holm's w * alpha
    alone = 1 - 0.95**0.5
    assert sidak_holm([1.0, 1.0, alone], weights=weights)[2] == pytest.approx(0.05)
    assert sidak_holm([0.7, 0.9, 1.0], weights=weights).tolist()[2] == 1.0


def test_sidak_holm_never_above_holm() -> None:
    rng = np.random.default_rng(14)
    for row in rng.uniform(0, 1, (200, 3)) ** 3:
        weights = rng.dirichlet(np.ones(3))
        assert np.all(sidak_holm(row, weights=weights) <= holm(row, weights=weights) + 1e-15)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_sidak_holm_global_p_value_is_valid_and_uniform_when_independent(rho: float) -> None:
    """The smallest adjusted p-value of 20,000 null families: uniform when independent."""
    rng = np.random.default_rng(15)
    runs, alpha, weights = 20_000, 0.05, [0.3, 0.2, 0.5]
    p = _correlated_p_values(rng, runs, rho)
    global_p = np.array([sidak_holm(row, weights=weights).min() for row in p])
    limit = stats.binom.ppf(0.999, runs, alpha) / runs
    assert (global_p <= alpha).mean() <= limit
    holm_p = np.array([holm(row, weights=weights).min() for row in p])
    if rho == 0.0:
        assert stats.kstest(global_p, "uniform").pvalue > 0.01
        assert stats.kstest(holm_p, "uniform").pvalue < 1e-6  # piles up at 1
        assert (holm_p == 1.0).mean() > 0.2


def test_sidak_holm_false_alarms_under_exclusive_tests_stay_below_the_bound() -> None:
    """The worst dependence, tests that never reject together, reaches about -log(1 - alpha)."""
    rng = np.random.default_rng(16)
    runs, alpha, weights = 200_000, 0.05, np.array([0.3, 0.2, 0.5])
    u = rng.uniform(size=runs)  # each p_i uniform; p_i small only on its own slice of u
    starts = np.concatenate([[0.0], np.cumsum(weights)[:-1]])
    p = (u[:, None] - starts) % 1.0
    rejected = np.array([sidak_holm(row, weights=weights).min() for row in p[:20_000]]) <= alpha
    bound = -np.log(1 - alpha)
    assert rejected.mean() <= bound + 4 * np.sqrt(bound / 20_000)
    assert rejected.mean() > alpha  # above alpha: the bound is not slack here


def test_sidak_holm_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="p-values in"):
        sidak_holm([0.2, 1.2])
    with pytest.raises(ValueError, match="weights summing to 1"):
        sidak_holm([0.1, 0.2], weights=[0.5, 0.6])
