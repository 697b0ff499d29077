"""Batch selection on real data (sklearn digits, raw pixels): no near-copies, cold-start cover."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from models.head import TrainedHead
from models.selection import DEFAULT_STRATEGY, SelectionInputs, select_batch
from models.training import train_head

DIVERSE = ["badge", "kcenter", "typiclust", "margin_clusters", DEFAULT_STRATEGY]
CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Small L-BFGS problems run faster on one thread than on contended cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float64), y.astype(np.int64)


@pytest.fixture(scope="module")
def seeded_head(digits: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, TrainedHead]:
    """Indices of 3 labeled digits per class and a head trained on them."""
    x, y = digits
    rng = np.random.default_rng(0)
    labeled = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 3, replace=False) for c in range(10)]
    )
    head = train_head(x[labeled], y[labeled], class_names=CLASSES, backbone_id="pixels", epochs=50)
    return labeled, head


def planted_pool(
    digits: tuple[np.ndarray, np.ndarray], labeled: np.ndarray, head: TrainedHead
) -> tuple[np.ndarray, np.ndarray]:
    """The unlabeled digits plus a near-copy of each of the 40 most uncertain ones.

    Returns the pool ``(n, 64)`` and, per pool row, the row it copies (or itself).
    """
    x, _ = digits
    pool = np.delete(x, labeled, axis=0)
    probs = head.predict_proba(pool)
    top_two = np.sort(probs, axis=1)[:, -2:]
    originals = np.argsort(top_two[:, 1] - top_two[:, 0])[:40]
    noise = np.random.default_rng(1).normal(scale=0.01, size=(40, pool.shape[1]))
    source = np.concatenate([np.arange(len(pool)), originals])
    return np.concatenate([pool, pool[originals] + noise]), source


def batch_has_copies(picks: np.ndarray, source: np.ndarray) -> bool:
    return any(source[a] == source[b] for a, b in itertools.combinations(picks, 2))


def test_diverse_strategies_never_pick_a_near_copy_pair(
    digits: tuple[np.ndarray, np.ndarray], seeded_head: tuple[np.ndarray, TrainedHead]
) -> None:
    labeled, head = seeded_head
    x, y = digits
    pool, source = planted_pool(digits, labeled, head)
    inputs = SelectionInputs(head.predict_proba(pool), pool, x[labeled], y[labeled], k=20)
    # Per-image uncertainty takes both copies of the most uncertain images: the test can fail.
    assert batch_has_copies(select_batch("margin", inputs), source)
    for name in DIVERSE:
        for seed in range(3):
            picks = select_batch(name, SelectionInputs(**{**inputs.__dict__, "seed": seed}))
            assert not batch_has_copies(picks, source), f"{name} (seed {seed}) picked a copy pair"


def test_cold_start_batch_covers_the_digit_clusters(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    uniform = np.full((len(x), 10), 0.1)
    none = np.zeros((0, x.shape[1]))
    covered = []
    for seed in range(3):
        inputs = SelectionInputs(uniform, x, none, np.zeros(0, np.int64), k=10, seed=seed)
        typical = len(set(y[select_batch("typiclust", inputs)]))
        random = len(set(y[select_batch("random", inputs)]))
        assert typical >= 8, f"seed {seed}: 10 typical images cover only {typical} digits"
        covered.append((typical, random))
    assert sum(t for t, _ in covered) > sum(r for _, r in covered)
