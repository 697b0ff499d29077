"""Majority vote and Dawid-Skene on annotators simulated over real digit labels."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from quality.consensus import dawid_skene, majority_vote
from quality.ratings import MISSING


def simulated_annotators(
    truth: np.ndarray, accuracies: list[float], n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Each annotator keeps the true label with its accuracy, else picks a random class."""
    columns = []
    for accuracy in accuracies:
        wrong = rng.random(truth.size) > accuracy
        columns.append(np.where(wrong, rng.integers(0, n_classes, truth.size), truth))
    return np.stack(columns, axis=1)


def test_majority_vote_reports_and_breaks_ties_deterministically() -> None:
    ratings = np.array([[0, 1, MISSING], [2, 2, 1], [1, 0, MISSING], [MISSING] * 3])
    vote = majority_vote(ratings, 3)
    np.testing.assert_array_equal(vote.labels, [0, 2, 0, MISSING])
    np.testing.assert_array_equal(vote.tied, [True, False, True, False])
    np.testing.assert_allclose(vote.support[:3], [0.5, 2 / 3, 0.5])
    latest = np.array([[1.0, 5.0, 0], [0, 0, 0], [9.0, 2.0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(majority_vote(ratings, 3, tie_break=latest).labels[:3], [1, 2, 0])


def test_dawid_skene_finds_a_careless_annotator_and_beats_majority_vote() -> None:
    truth = load_digits().target[:600]
    rng = np.random.default_rng(0)
    ratings = simulated_annotators(truth, [0.9, 0.85, 0.8, 0.15, 0.15], 10, rng)
    ratings[rng.random(ratings.shape) < 0.2] = MISSING
    model = dawid_skene(ratings, 10)
    skill = np.trace(model.confusion, axis1=1, axis2=2) / 10
    assert model.converged
    assert skill[3] < 0.4 and skill[4] < 0.4 and skill[:3].min() > 0.7
    rated = model.labels != MISSING
    ds_accuracy = np.mean(model.labels[rated] == truth[rated])
    mv_accuracy = np.mean(majority_vote(ratings, 10).labels[rated] == truth[rated])
    assert ds_accuracy > mv_accuracy + 0.03
    np.testing.assert_allclose(model.posteriors.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.confusion.sum(axis=2), 1.0)
    assert np.all(np.diff(model.lower_bound) > -1e-9)  # EM never lowers the bound


def test_known_answers_pin_their_units() -> None:
    truth = load_digits().target[:200]
    rng = np.random.default_rng(1)
    ratings = simulated_annotators(truth, [0.7, 0.6, 0.5], 10, rng)
    known = np.full(truth.size, MISSING)
    known[:50] = truth[:50]
    model = dawid_skene(ratings, 10, known=known)
    np.testing.assert_array_equal(model.labels[:50], truth[:50])
    np.testing.assert_array_equal(model.posteriors[:50].max(axis=1), 1.0)


def test_unrated_units_get_the_prior_and_no_label() -> None:
    ratings = np.array([[0, 0], [1, 1], [MISSING, MISSING], [0, 1]])
    model = dawid_skene(ratings, 2, max_iter=5, tol=None)
    assert model.n_iter == 5 and not model.converged
    assert model.labels[2] == MISSING
    np.testing.assert_allclose(model.posteriors[2], model.priors)


def test_no_ratings_at_all_gives_uniform_posteriors() -> None:
    model = dawid_skene(np.full((3, 2), MISSING), 4)
    np.testing.assert_array_equal(model.labels, [MISSING] * 3)
    np.testing.assert_allclose(model.posteriors, 0.25)
