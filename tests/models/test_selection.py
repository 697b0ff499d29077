"""Batch selection: each strategy on inputs with a known answer, the registry's checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.selection import (
    DEFAULT_STRATEGY,
    SelectionInputs,
    available_selectors,
    get_selector,
    select_batch,
)
from models.selection.diversity import KCENTER_MAX_CANDIDATES
from models.selection.inputs import candidate_rows
from models.selection.scored import BALD_MAX_CANDIDATES
from models.uncertainty import mutual_information

ALL = [
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "badge",
    "kcenter",
    "typiclust",
    "margin_clusters",
    "typical_margin",
]


def inputs_for(
    probs: np.ndarray,
    embeddings: np.ndarray | None = None,
    labeled: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    k: int,
    **extra: object,
) -> SelectionInputs:
    n, n_classes = np.asarray(probs).shape
    x = np.zeros((n, 2)) if embeddings is None else embeddings
    lab = np.zeros((0, x.shape[1])) if labeled is None else labeled
    y = np.zeros(len(lab), dtype=np.int64) if labels is None else labels
    return SelectionInputs(probs, x, lab, y, k=k, **extra)  # type: ignore[arg-type]


def blobs(sizes: list[int], *, seed: int = 0, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs ``(sum(sizes), 2)`` around centres on a circle of radius 10, and blob ids."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(len(sizes)) / len(sizes)
    centres = 10 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    ids = np.repeat(np.arange(len(sizes)), sizes)
    return centres[ids] + spread * rng.standard_normal((len(ids), 2)), ids


UNCERTAIN = np.array(
    [
        [0.98, 0.01, 0.01],  # confident
        [0.34, 0.33, 0.33],  # most uncertain by every measure
        [0.50, 0.49, 0.01],  # a near tie between two classes
        [0.70, 0.20, 0.10],
    ]
)


def test_registry_lists_every_strategy_and_the_default() -> None:
    assert available_selectors() == sorted(ALL)
    assert DEFAULT_STRATEGY in available_selectors()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("least_confidence", [1, 2, 3]), ("margin", [1, 2, 3]), ("entropy", [1, 3, 2])],
)
def test_score_strategies_take_the_highest_scores_in_order(name: str, expected: list[int]) -> None:
    picks = select_batch(name, inputs_for(UNCERTAIN, k=3))
    np.testing.assert_array_equal(picks, expected)


def test_random_is_seeded_distinct_and_capped_at_the_pool() -> None:
    probs = np.full((30, 2), 0.5)
    first = select_batch("random", inputs_for(probs, k=10, seed=4))
    np.testing.assert_array_equal(first, select_batch("random", inputs_for(probs, k=10, seed=4)))
    assert not np.array_equal(first, select_batch("random", inputs_for(probs, k=10, seed=5)))
    assert sorted(select_batch("random", inputs_for(probs, k=99))) == list(range(30))


def test_bald_prefers_disagreement_to_agreed_uncertainty() -> None:
    # Image 0: every member says 50/50 (aleatoric). Image 1: members are sure but disagree.
    members = np.array(
        [
            [[0.5, 0.5], [0.99, 0.01], [0.9, 0.1]],
            [[0.5, 0.5], [0.01, 0.99], [0.9, 0.1]],
        ]
    )
    probs = members.mean(axis=0)
    assert select_batch("entropy", inputs_for(probs, k=1))[0] == 0
    assert select_batch("bald", inputs_for(probs, k=1, member_probs=members))[0] == 1


def test_kcenter_takes_the_farthest_points_from_the_labeled_set() -> None:
    pool = np.array([[1.0, 0.0], [5.0, 0.0], [-4.0, 0.0], [0.0, 0.5], [4.5, 0.0]])
    labeled = np.zeros((1, 2))
    picks = select_batch("kcenter", inputs_for(np.full((5, 2), 0.5), pool, labeled, k=2))
    np.testing.assert_array_equal(picks, [1, 2])  # 5 from 0, then -4 (4.5 is close to 5)


def test_candidate_rows_keep_a_small_pool_and_sample_a_big_one_by_seed() -> None:
    np.testing.assert_array_equal(candidate_rows(5, 10, seed=0), np.arange(5))
    rows = candidate_rows(1000, 100, seed=3)
    assert rows.shape == (100,) and np.all(np.diff(rows) > 0) and rows.max() < 1000
    np.testing.assert_array_equal(rows, candidate_rows(1000, 100, seed=3))
    assert not np.array_equal(rows, candidate_rows(1000, 100, seed=4))
    with pytest.raises(ValueError, match="expected limit >= 1"):
        candidate_rows(10, 0, seed=0)


def test_bald_and_kcenter_on_a_big_pool_choose_from_their_sample_by_score() -> None:
    n = BALD_MAX_CANDIDATES + 2000
    rng = np.random.default_rng(2)
    members = rng.dirichlet(np.full(3, 50.0), size=(2, n))  # members nearly agree everywhere
    members[0, ::97], members[1, ::97] = [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]  # disagree
    x = rng.standard_normal((n, 2))
    labeled = rng.standard_normal((3, 2))
    inputs = inputs_for(members.mean(axis=0), x, labeled, k=5, seed=7, member_probs=members)
    sample = candidate_rows(n, BALD_MAX_CANDIDATES, seed=7)
    scores = mutual_information(members)
    shares, expected = [], []
    for draw in range(20):
        rows = candidate_rows(n, BALD_MAX_CANDIDATES, seed=draw)
        bald = select_batch("bald", dataclasses.replace(inputs, seed=draw))
        assert set(bald) <= set(rows) and np.all(np.diff(scores[bald]) <= 0)  # best first
        planted = np.intersect1d(rows, np.arange(0, n, 97))
        shares.append(np.isin(bald, planted).mean())
        expected.append(scores[planted].sum() / scores[rows].sum())  # draws are ∝ score
    assert len(planted) / len(rows) < 0.02 < 0.3 < np.mean(shares)
    assert abs(np.mean(shares) - np.mean(expected)) < 0.15
    kcenter = select_batch("kcenter", inputs)
    assert set(kcenter) <= set(candidate_rows(n, KCENTER_MAX_CANDIDATES, seed=7))
    gaps = ((x[sample, None, :] - labeled[None]) ** 2).sum(axis=2).min(axis=1)
    assert kcenter[0] == sample[np.argmax(gaps)]


def test_badge_starts_with_the_largest_gradient_and_skips_its_copy() -> None:
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.99, 0.01]])
    x = np.array([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, -3.0]])
    picks = select_batch("badge", inputs_for(probs, x, k=2))
    assert picks[0] in (0, 1)  # largest |p - onehot| * |x|
    assert set(picks) != {0, 1}  # an identical gradient has zero distance: never drawn


def test_typiclust_takes_the_centre_of_each_blob_largest_first() -> None:
    x, ids = blobs([200, 120, 60])
    picks = select_batch("typiclust", inputs_for(np.full((len(x), 2), 0.5), x, k=3))
    np.testing.assert_array_equal(ids[picks], [0, 1, 2])
    for pick in picks:
        members = x[ids == ids[pick]]
        distance = np.linalg.norm(x[pick] - members.mean(axis=0))
        assert distance < 0.3  # the densest point sits near the blob's centre


def test_typiclust_skips_blobs_that_are_already_labeled() -> None:
    x, ids = blobs([200, 120, 60, 100])
    labeled = x[ids == 0][:3]
    probs = np.full((len(x), 2), 0.5)
    picks = select_batch("typiclust", inputs_for(probs, x, labeled, np.zeros(3, np.int64), k=3))
    assert set(ids[picks]) == {1, 2, 3}


def test_margin_clusters_takes_one_uncertain_image_per_group() -> None:
    x, ids = blobs([10, 10])
    probs = np.tile([0.9, 0.1], (20, 1))
    probs[[0, 1, 2]] = [0.5, 0.5]  # three uncertain images in blob 0
    probs[15] = [0.6, 0.4]  # the most uncertain image of blob 1
    picks = select_batch("margin_clusters", inputs_for(probs, x, k=2))
    assert picks[0] in (0, 1, 2) and picks[1] == 15


def test_default_starts_cold_with_typicality_then_uses_uncertainty() -> None:
    x, ids = blobs([200, 120, 60])
    probs = np.tile([0.9, 0.1], (len(x), 1))
    probs[ids == 2] = [0.55, 0.45]
    cold = select_batch(DEFAULT_STRATEGY, inputs_for(probs, x, k=3))
    assert set(ids[cold]) == {0, 1, 2}
    warm_labels = np.repeat([0, 1], 10)
    warm = select_batch(DEFAULT_STRATEGY, inputs_for(probs, x, x[:20], warm_labels, k=3))
    assert set(ids[warm]) == {2}  # only blob 2 is uncertain once labels exist


def test_class_balancing_serves_the_rarest_class_first() -> None:
    probs = np.array([[0.6, 0.4, 0.0]] * 6 + [[0.1, 0.25, 0.65]] * 2)
    probs[:6, 0] -= np.arange(6) * 0.01  # images 5, 4, ... of class 0 are most uncertain
    probs[:6, 1] += np.arange(6) * 0.01
    labels = np.array([0, 0, 0, 1, 1, 2])
    inputs = inputs_for(probs, np.eye(8), np.eye(8)[:6], labels, k=3)
    plain = select_batch("margin", inputs)
    balanced = select_batch("margin", inputs, class_balanced=True)
    assert set(plain) <= set(range(6))
    assert balanced[0] in (6, 7)  # predicted class 2, which has one label


@pytest.mark.parametrize("name", ALL)
def test_every_strategy_returns_k_distinct_pool_indices(name: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 4))
    probs = rng.dirichlet(np.ones(3), size=60)
    labeled = rng.standard_normal((6, 4))
    members = rng.dirichlet(np.ones(3), size=(4, 60))
    inputs = inputs_for(probs, x, labeled, np.arange(6) % 3, k=7, member_probs=members)
    picks = select_batch(name, inputs)
    assert picks.shape == (7,) and len(set(picks)) == 7 and picks.max() < 60


def test_registry_and_input_errors_name_what_was_expected() -> None:
    probs = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="unknown selection strategy 'nope'; expected one of"):
        get_selector("nope")
    with pytest.raises(ValueError, match="expected k >= 1"):
        inputs_for(probs, k=0)
    with pytest.raises(ValueError, match=r"expected embeddings of shape \(4, D\)"):
        inputs_for(probs, np.zeros((3, 2)), k=1)
    with pytest.raises(ValueError, match="summing to 1"):
        inputs_for(np.full((4, 2), 0.7), k=1)
    with pytest.raises(ValueError, match=r"labeled_labels in \[0, 2\)"):
        inputs_for(probs, np.zeros((4, 2)), np.zeros((1, 2)), np.array([2]), k=1)
    with pytest.raises(ValueError, match="member_probs of shape"):
        inputs_for(probs, k=1, member_probs=np.full((2, 3, 2), 0.5))
    with pytest.raises(ValueError, match="bald needs member_probs"):
        select_batch("bald", inputs_for(probs, k=1))
