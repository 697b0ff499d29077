"""Novelty on sklearn digits with a few Fashion-MNIST items planted among them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits

from models.datasets import load_fashion_mnist
from quality.drift import conformal_p_values, nearest_distances, novelty_test


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data / 16.0


@pytest.fixture(scope="module")
def shoes_as_digits() -> np.ndarray:
    """Fashion-MNIST footwear (sandal, sneaker, ankle boot) shrunk to 8x8 like the digits."""
    images, labels = load_fashion_mnist("test")
    shoes = images[np.isin(labels, [5, 7, 9])][:20, 2:26, 2:26].astype(np.float64) / 255.0
    return shoes.reshape(20, 8, 3, 8, 3).mean(axis=(2, 4)).reshape(20, 64)


def test_conformal_p_value_formula() -> None:
    reference = np.array([0.1, 0.2, 0.2, 0.4, 0.9])
    p = conformal_p_values(reference, np.array([0.05, 0.2, 0.5, 1.0]))
    np.testing.assert_allclose(p, [6 / 6, 5 / 6, 2 / 6, 1 / 6])


def test_distances_match_brute_force(digits: np.ndarray) -> None:
    ref, new = digits[:300], digits[300:360]
    loo, best = nearest_distances(ref, new, device="cpu")
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    sims = unit(ref) @ unit(ref).T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_allclose(loo, 1 - sims.max(1), atol=1e-6)
    np.testing.assert_allclose(best, 1 - (unit(new) @ unit(ref).T).max(1), atol=1e-6)


def test_lists_the_planted_odd_images(digits: np.ndarray, shoes_as_digits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    batch = digits[1600:1750].copy()
    planted = np.sort(rng.choice(len(batch), 4, replace=False))
    batch[planted] = shoes_as_digits[:4]
    result = novelty_test(digits[:1600], batch)
    assert set(result.novel_indices[:4]) == set(planted.tolist())
    assert len(result.novel_indices) <= 5  # at most one ordinary digit among the listed
    assert result.image_p_values[planted].max() == result.smallest_image_p_value == 1 / 1601
    assert result.drifted and result.n_exceeding >= 4


def test_nothing_listed_without_odd_images(digits: np.ndarray) -> None:
    result = novelty_test(digits[:1600], digits[1600:1750])
    assert result.novel_indices == ()
    assert result.quantiles == tuple(k / 1601 for k in (8, 16, 32, 80, 160))
    beyond = [int((result.image_p_values <= q).sum()) for q in result.quantiles]
    assert result.exceedance_counts == tuple(beyond)
    assert result.quantile in result.quantiles
    assert result.n_exceeding == beyond[result.quantiles.index(result.quantile)]
    assert result.expected_exceeding == pytest.approx(150 * result.quantile)


@pytest.mark.usefixtures("one_thread")
def test_batch_false_alarms_stay_in_a_binomial_band(digits: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    runs, alpha = 150, 0.05
    p_values, listed = [], 0
    for _ in range(runs):
        idx = rng.permutation(len(digits))[:800]
        result = novelty_test(digits[idx[:600]], digits[idx[600:]], device="cpu")
        p_values.append(result.p_value)
        listed += bool(result.novel_indices)
    alarms = int((np.array(p_values) <= alpha).sum())
    low, high = stats.binom.ppf([0.001, 0.999], runs, alpha)
    assert low <= alarms <= high
    assert listed <= high
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_bad_inputs_raise(digits: np.ndarray) -> None:
    with pytest.raises(ValueError, match="quantile"):
        novelty_test(digits[:10], digits[10:20], quantiles=(0.05,))
    with pytest.raises(ValueError, match="same dimension"):
        novelty_test(digits[:100], digits[:10, :5])
