"""The semi-supervised head: label spreading over a kNN graph, then a linear head on it all."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import evaluate_training
from models.knn_graph import build_knn_graph
from models.label_spreading import affinity_matrix, spread_labels
from models.semi_supervised import (
    SemiSupervisedSettings,
    pseudo_labels,
    train_semi_supervised_head,
)
from models.training import train_head

CLASSES = ["upper", "lower"]


def two_moons(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles, embedded by 256 random Fourier features.

    In the embedding a linear head can separate the moons, and cosine similarity is close
    to a Gaussian kernel on the plane, so the graph follows each moon.
    """
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, np.pi, n)
    y = rng.integers(0, 2, n)
    plane = np.where(
        y[:, None] == 0,
        np.stack([np.cos(angle), np.sin(angle)], axis=1),
        np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], axis=1),
    )
    plane += 0.06 * rng.standard_normal(plane.shape)
    features = np.random.default_rng(0)  # one embedding for every sample
    frequencies = features.standard_normal((2, 256)) / 0.25
    phases = features.uniform(0, 2 * np.pi, 256)
    return np.cos(plane @ frequencies + phases).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def moons() -> tuple[np.ndarray, np.ndarray, object]:
    x, y = two_moons(1500, seed=3)
    graph = build_knn_graph(x, np.arange(len(y)), k=10, seed=0)
    return x, y, affinity_matrix(graph.neighbours, graph.similarities, power=3.0)


def four_labels(y: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), 2, replace=False) for c in (0, 1)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spreading_beats_the_supervised_head_at_four_labels(moons, seed: int) -> None:
    x, y, affinity = moons
    labeled = four_labels(y, seed)
    semi = train_semi_supervised_head(
        x, affinity, labeled, y[labeled], class_names=CLASSES, backbone_id="moons"
    )
    supervised = train_head(x[labeled], y[labeled], class_names=CLASSES, backbone_id="moons")
    test_x, test_y = two_moons(1000, seed=11)  # images the graph never saw
    semi_accuracy = (semi.predict_proba(test_x).argmax(axis=1) == test_y).mean()
    supervised_accuracy = (supervised.predict_proba(test_x).argmax(axis=1) == test_y).mean()
    assert semi_accuracy >= 0.85
    assert semi_accuracy > supervised_accuracy + 0.05
    assert semi.n_train == 4 and semi.metrics["pseudo_labels"] > 1000


def test_the_same_inputs_give_the_same_head(moons) -> None:
    x, y, affinity = moons
    labeled = four_labels(y, 0)
    versions = {
        train_semi_supervised_head(
            x, affinity, labeled, y[labeled], class_names=CLASSES, backbone_id="moons", seed=5
        ).version
        for _ in range(2)
    }
    assert len(versions) == 1


def test_spread_labels_keep_the_given_labels_and_reach_every_connected_row(moons) -> None:
    _, y, affinity = moons
    labeled = four_labels(y, 0)
    spread = spread_labels(affinity, labeled, y[labeled], 2, alpha=0.9, iterations=20)
    assert np.array_equal(spread.labels[labeled], y[labeled])
    assert np.all(spread.certainty[labeled] == 1.0)
    assert (spread.labels == y).mean() > 0.8
    assert np.all((spread.certainty >= 0) & (spread.certainty <= 1))


def test_pseudo_labels_skip_labeled_and_excluded_rows_and_balance_classes(moons) -> None:
    _, y, affinity = moons
    labeled = four_labels(y, 0)
    held_out = np.arange(0, 1500, 3)
    settings = SemiSupervisedSettings(max_pseudo=400)
    pseudo = pseudo_labels(affinity, labeled, y[labeled], 2, settings, exclude_rows=held_out)
    assert not np.isin(pseudo.rows, labeled).any()
    assert not np.isin(pseudo.rows, held_out).any()
    assert np.bincount(pseudo.labels).tolist() == [200, 200]
    assert pseudo.weights.sum() == pytest.approx(settings.pseudo_weight * len(labeled))


def test_held_out_labels_are_never_learned_from_in_evaluation(moons) -> None:
    """Each fold's head gets the fold's labels only, and its held-out images stay unlabeled."""
    x, y, affinity = moons
    labeled = np.arange(0, 1500, 50)  # 30 confirmed labels
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def train(inside: np.ndarray, outside: np.ndarray):
        seen.append((inside, outside))
        excluded = labeled[outside]
        pseudo = pseudo_labels(
            affinity,
            labeled[inside],
            y[labeled[inside]],
            2,
            SemiSupervisedSettings(),
            exclude_rows=excluded,
        )
        assert not np.isin(pseudo.rows, excluded).any()
        return train_semi_supervised_head(
            x,
            affinity,
            labeled[inside],
            y[labeled[inside]],
            class_names=CLASSES,
            backbone_id="moons",
            exclude_rows=excluded,
        )

    evaluation = evaluate_training(x[labeled], y[labeled], class_names=CLASSES, train_rows=train)
    assert evaluation.n_evaluated == len(labeled)  # confirmed labels are the only evidence
    for inside, outside in seen:
        assert not np.intersect1d(inside, outside).size
        assert np.union1d(inside, outside).size == len(labeled)
    assert evaluation.accuracy > 0.9


@pytest.mark.parametrize(
    "change",
    [{"k": 0}, {"alpha": 1.0}, {"alpha": 0.0}, {"min_certainty": 1.5}, {"pseudo_weight": -1}],
)
def test_settings_out_of_range_are_refused(change: dict) -> None:
    with pytest.raises(ValueError, match="invalid semi-supervised settings"):
        SemiSupervisedSettings(**change)


def test_bad_labels_are_refused(moons) -> None:
    _, y, affinity = moons
    with pytest.raises(ValueError):
        spread_labels(affinity, np.array([0, 1]), np.array([0, 5]), 2, alpha=0.9, iterations=5)
    with pytest.raises(ValueError):
        spread_labels(affinity, np.array([0]), np.array([0, 1]), 2, alpha=0.9, iterations=5)
