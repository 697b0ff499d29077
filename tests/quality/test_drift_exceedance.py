"""The exceedance scan: its null law against directly simulated scores, and its power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from quality.drift.exceedance import scan_test, thresholds

GRID = (0.005, 0.01, 0.02, 0.05, 0.1)


def counts_beyond(reference: np.ndarray, new: np.ndarray, ks: tuple[int, ...]) -> list[int]:
    """New scores above the reference's ``k``-th largest score, for each ``k``."""
    ordered = np.sort(reference)[::-1]
    return [int((new > ordered[k - 1]).sum()) for k in ks]


def test_thresholds_drop_ranks_below_one_and_sort() -> None:
    assert thresholds((0.1, 0.005, 0.01, 0.1), 150) == (1, 15)
    assert thresholds(GRID, 2000) == (10, 20, 40, 100, 200)
    for bad in ((), (0.0,), (1.5,)):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            thresholds(bad, 100)
    with pytest.raises(ValueError, match="quantile >= 1 / \\(n_reference \\+ 1\\)"):
        thresholds((0.01,), 10)


def test_one_threshold_is_the_beta_binomial_mid_p() -> None:
    null = stats.betabinom(500, 100, 1901)
    for count in (10, 25, 40):
        p_value, best = scan_test([count], 500, (100,), 2000)
        assert best == 0
        assert p_value == pytest.approx(null.sf(count) + 0.5 * null.pmf(count), abs=1e-10)


def test_scan_null_matches_directly_simulated_scores() -> None:
    """Reference and new scores drawn from one law: the scan's p-values are uniform."""
    rng = np.random.default_rng(3)
    m, n, runs = 400, 100, 400
    ks = thresholds(GRID, m)
    p_values = []
    for _ in range(runs):
        reference, new = rng.gamma(2.0, size=m), rng.gamma(2.0, size=n)
        p_values.append(scan_test(counts_beyond(reference, new, ks), n, ks, m)[0])
    alarms = int((np.array(p_values) <= 0.05).sum())
    low, high = stats.binom.ppf([0.001, 0.999], runs, 0.05)
    assert low <= alarms <= high
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_a_few_far_scores_beat_a_single_five_percent_threshold() -> None:
    rng = np.random.default_rng(4)
    m, n = 2000, 500
    reference = rng.gamma(2.0, size=m)
    new = np.concatenate([rng.gamma(2.0, size=n - 12), reference.max() + rng.random(12)])
    ks = thresholds(GRID, m)
    counts = counts_beyond(reference, new, ks)
    p_scan, best = scan_test(counts, n, ks, m)
    p_single, _ = scan_test([counts[3]], n, (100,), m)
    assert ks[best] < 100  # the most significant count is at a smaller quantile
    assert p_scan < 0.001 < p_single


def test_scan_is_at_most_its_bonferroni_bound_and_deterministic() -> None:
    ks = thresholds(GRID, 2000)
    for counts in ([3, 6, 12, 30, 55], [0, 0, 0, 0, 0], [9, 20, 45, 110, 210]):
        p_value, best = scan_test(counts, 500, ks, 2000)
        p_first = scan_test([counts[best]], 500, (ks[best],), 2000)[0]
        assert p_first <= p_value <= min(1.0, len(ks) * p_first)
        assert scan_test(counts, 500, ks, 2000) == (p_value, best)


def test_bad_counts_raise() -> None:
    with pytest.raises(ValueError, match="expected 2 counts"):
        scan_test([1, 2, 3], 10, (1, 2), 100)
    with pytest.raises(ValueError, match="in \\[0, 10\\]"):
        scan_test([1, 11], 10, (1, 2), 100)
