"""Evaluating a head on labels it did not train on, on real data."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from models.datasets import load_fashion_mnist
from models.evaluation import HOLDOUT_FROM, MIN_LABELS, evaluate_training
from models.training import train_head

CLASSES = [str(i) for i in range(10)]
# Fewer L-BFGS iterations than the default keep these tests quick; the head is the same.
TRAIN = partial(train_head, class_names=CLASSES, backbone_id="pixels", epochs=40)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cross_validation_estimates_accuracy_on_unseen_digits() -> None:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    labeled, unseen = order[:200], order[200:]
    result = evaluate_training(x[labeled], y[labeled], class_names=CLASSES, train=TRAIN, seed=1)
    head = TRAIN(x[labeled], y[labeled])
    true_accuracy = float((head.predict_proba(x[unseen]).argmax(axis=1) == y[unseen]).mean())
    assert result.method == "5-fold cross-validation"
    assert (result.n_labels, result.n_evaluated) == (200, 200)
    assert abs(result.accuracy - true_accuracy) < 0.05
    assert set(result.per_class_recall) == set(CLASSES)
    assert all(0.5 <= r <= 1.0 for r in result.per_class_recall.values() if r is not None)
    assert 0.0 <= result.ece < 0.2 and result.nll > 0
    assert result.temperature > 0 and result.calibrated_nll <= result.nll * 1.1
    assert result.as_dict()["accuracy"] == result.accuracy


def test_few_labels_and_a_single_label_class_still_evaluate() -> None:
    x, y = load_digits(return_X_y=True)
    picked = np.concatenate(
        [np.flatnonzero(y == 0)[:6], np.flatnonzero(y == 1)[:5], [np.flatnonzero(y == 2)[0]]]
    )
    result = evaluate_training(x[picked], y[picked], class_names=CLASSES, train=TRAIN)
    assert result.n_evaluated == len(picked) == 12
    assert result.per_class_recall["2"] == 0.0  # its one label was never trained on
    assert result.per_class_recall["3"] is None


def test_many_labels_use_a_held_out_share() -> None:
    images, labels = load_fashion_mnist("test")
    n = HOLDOUT_FROM + 500
    # 4x4 average pooling: 7x7 grey levels per image, a cheap real feature space.
    features = images[:n].reshape(n, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(n, 49) / 255.0
    y = labels[:n].astype(np.int64)
    result = evaluate_training(features, y, class_names=CLASSES, train=TRAIN)
    assert result.method == "held-out 20%"
    assert result.n_evaluated == pytest.approx(0.2 * len(y), abs=10)
    assert 0.6 < result.accuracy < 0.95


def test_too_few_labels_are_refused() -> None:
    x, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match=f"at least {MIN_LABELS} labels of at least 2 classes"):
        evaluate_training(x[: MIN_LABELS - 1], y[: MIN_LABELS - 1], class_names=CLASSES)
    with pytest.raises(ValueError, match="at least 2 classes"):
        evaluate_training(x[y == 0][:20], y[y == 0][:20], class_names=CLASSES)
