import math

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from models.uncertainty import (
    available_strategies,
    entropy,
    get_strategy,
    least_confidence,
    margin,
    random_scores,
    rank_by_score,
)

STRATEGIES = ["entropy", "margin", "least_confidence", "random"]


def dirichlet_probs(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(n_classes, 0.5), size=n)


@pytest.mark.parametrize("n_classes", [2, 3, 10, 100])
def test_entropy_of_uniform_is_log_c_and_of_one_hot_is_zero(n_classes: int) -> None:
    uniform = np.full((1, n_classes), 1.0 / n_classes)
    one_hot = np.eye(n_classes)
    assert entropy(uniform)[0] == pytest.approx(math.log(n_classes))
    np.testing.assert_array_equal(entropy(one_hot), np.zeros(n_classes))


def test_entropy_matches_scipy() -> None:
    probs = dirichlet_probs(200, 7)
    probs[:20, 0] = 0.0  # exact zeros must be handled like scipy does
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(entropy(probs), scipy_entropy(probs, axis=1), rtol=1e-12)


def test_margin_and_least_confidence_known_values() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0], [0.1, 0.2, 0.7]])
    np.testing.assert_allclose(margin(probs), [0.8, 1.0, 0.0, 0.5])
    np.testing.assert_allclose(least_confidence(probs), [0.5, 0.6, 0.0, 0.3])


def test_single_class_scores() -> None:
    probs = np.ones((3, 1))
    np.testing.assert_array_equal(margin(probs), np.zeros(3))
    np.testing.assert_array_equal(entropy(probs), np.zeros(3))


@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence"])
def test_higher_score_means_more_uncertain(name: str) -> None:
    probs = np.array([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]])
    order = rank_by_score(get_strategy(name)(probs))
    np.testing.assert_array_equal(order, [1, 2, 0])


def test_random_scores_are_seeded_and_in_unit_interval() -> None:
    probs = dirichlet_probs(50, 4)
    first = random_scores(probs, seed=3)
    np.testing.assert_array_equal(first, random_scores(probs, seed=3))
    assert not np.array_equal(first, random_scores(probs, seed=4))
    assert first.shape == (50,) and np.all((first >= 0) & (first < 1))


def test_rank_breaks_ties_by_lower_index_and_clips_k() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1])
    np.testing.assert_array_equal(rank_by_score(scores), [1, 3, 0, 2, 4])
    np.testing.assert_array_equal(rank_by_score(scores, k=3), [1, 3, 0])
    np.testing.assert_array_equal(rank_by_score(scores, k=99), [1, 3, 0, 2, 4])
    assert rank_by_score(scores, k=0).size == 0
    assert rank_by_score(np.array([])).size == 0


@pytest.mark.parametrize(
    "scores, k",
    [(np.zeros((2, 2)), None), (np.array([1.0, np.nan]), None), (np.ones(3), -1)],
)
def test_rank_rejects_bad_input(scores: np.ndarray, k: int | None) -> None:
    with pytest.raises(ValueError, match="expected"):
        rank_by_score(scores, k=k)


BAD_PROBS = {
    "one-dimensional": np.array([0.5, 0.5]),
    "no classes": np.zeros((3, 0)),
    "nan": np.array([[0.5, np.nan]]),
    "negative": np.array([[1.2, -0.2]]),
    "not normalised": np.array([[0.5, 0.49], [0.5, 0.5]]),
}


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", sorted(BAD_PROBS))
def test_every_strategy_rejects_bad_probabilities(name: str, case: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        get_strategy(name)(BAD_PROBS[case])


def test_rows_summing_to_one_within_tolerance_are_accepted() -> None:
    probs = np.array([[0.5, 0.4995]], dtype=np.float32)
    assert entropy(probs).shape == (1,)


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_returns_one_score_per_image(name: str) -> None:
    probs = dirichlet_probs(30, 5)
    scores = get_strategy(name)(probs)
    assert scores.shape == (30,) and np.all(np.isfinite(scores))
    assert get_strategy(name)(np.zeros((0, 5))).shape == (0,)


def test_registry() -> None:
    assert available_strategies() == sorted(STRATEGIES)
    assert get_strategy("entropy") is entropy
    with pytest.raises(ValueError, match="least_confidence") as info:
        get_strategy("bald")
    assert "entropy, least_confidence, margin, random" in str(info.value)
