"""Temperature scaling and ECE: known answers, and lower ECE on held-out real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from models.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    softmax,
    with_temperature,
)
from models.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from models.training import train_head

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ece_of_known_bins() -> None:
    # Confidence 0.9 everywhere, half right: |0.5 - 0.9| = 0.4.
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0, 1] * 5)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    # Two bins: 0.95 confident and all right (gap 0.05), 0.55 confident and half right (0.05).
    probs = np.array([[0.95, 0.05]] * 4 + [[0.55, 0.45]] * 4)
    labels = np.array([0, 0, 0, 0, 0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.05)


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = 4.0 * rng.standard_normal((20000, 5))
    true_probs = softmax(logits, temperature=2.5)
    labels = (rng.random((20000, 1)) > np.cumsum(true_probs, axis=1)).sum(axis=1)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    assert negative_log_likelihood(logits, labels, temperature=t) < negative_log_likelihood(
        logits, labels
    )


def test_calibration_lowers_ece_on_held_out_digits(tmp_path: Path) -> None:
    """A weakly regularised head is overconfident; T fitted on one split helps another."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    train, fit_part, test = order[:150], order[150:900], order[900:]
    head = train_head(
        x[train], y[train], class_names=CLASSES, backbone_id="pixels", weight_decay=1e-5, epochs=100
    )
    t = fit_temperature(head.logits(x[fit_part]), y[fit_part])
    calibrated = with_temperature(head, t)
    before = expected_calibration_error(head.predict_proba(x[test]), y[test])
    after = expected_calibration_error(calibrated.predict_proba(x[test]), y[test])
    assert t > 1.0 and after < 0.75 * before
    np.testing.assert_array_equal(
        calibrated.predict_proba(x[test]).argmax(axis=1), head.predict_proba(x[test]).argmax(axis=1)
    )
    # The temperature travels with the checkpoint and is part of the version.
    assert calibrated.version != head.version
    assert with_temperature(head, 1.0).version == head.version
    loaded = load_checkpoint(save_checkpoint(calibrated, tmp_path))
    assert loaded.temperature == t and loaded.version == calibrated.version
    np.testing.assert_array_equal(loaded.predict_proba(x[test]), calibrated.predict_proba(x[test]))


def test_checkpoints_without_a_temperature_load_unchanged(tmp_path: Path) -> None:
    x, y = load_digits(return_X_y=True)
    head = train_head(x[:100], y[:100], class_names=CLASSES, backbone_id="pixels", epochs=20)
    payload = torch.load(save_checkpoint(head, tmp_path), weights_only=True)
    del payload["temperature"]  # as files were written before heads had one
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    loaded = load_checkpoint(old)
    assert payload["format"] == FORMAT
    assert loaded.temperature == 1.0 and loaded.version == head.version


def test_calibration_input_errors() -> None:
    with pytest.raises(ValueError, match="temperature > 0"):
        softmax(np.zeros((2, 3)), temperature=0.0)
    with pytest.raises(ValueError, match=r"logits of shape \(n >= 1, n_classes >= 2\)"):
        fit_temperature(np.zeros((3, 1)), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\)"):
        negative_log_likelihood(np.zeros((2, 3)), np.array([0, 3]))
