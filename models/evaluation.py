"""How good a trained head is, measured on labels it did not train on.

:func:`evaluate_training` re-trains the head on part of the labels and predicts the rest:
stratified k-fold cross-validation (every label is predicted once, by a head that did not
see it), or, from :data:`HOLDOUT_FROM` labels on, a single stratified held-out share. It
reports accuracy, per-class recall, ECE and NLL, and the temperature that calibrates the
head trained on all labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from models.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    softmax,
)
from models.head import TrainedHead
from models.training import train_head

Trainer = Callable[[np.ndarray, np.ndarray], TrainedHead]
# Trains on the labels at the given positions (a semi-supervised head also needs to know
# which pool images they are, and which images are held out).
RowTrainer = Callable[[np.ndarray, np.ndarray], TrainedHead]

# Fewer labels than this (or fewer than 2 classes) cannot be evaluated.
MIN_LABELS = 10
DEFAULT_FOLDS = 5
# From this many labels on, one stratified held-out share replaces cross-validation.
HOLDOUT_FROM = 2000
HOLDOUT_SHARE = 0.2


@dataclass(frozen=True)
class HeadEvaluation:
    """Out-of-sample quality of a head trained on ``n_labels`` labels.

    ``accuracy``, ``ece`` (15 bins) and ``nll`` (nats) are of the uncalibrated heads over
    ``n_evaluated`` predictions; ``per_class_recall`` maps each class name to its recall, or
    None when no label of it was evaluated. ``temperature`` is fitted on all held-out logits;
    ``calibrated_ece`` and ``calibrated_nll`` apply to each part a temperature fitted on the
    other parts, so they too are measured on data the fit did not see.
    """

    method: str
    n_labels: int
    n_evaluated: int
    accuracy: float
    per_class_recall: dict[str, float | None]
    ece: float
    nll: float
    temperature: float
    calibrated_ece: float
    calibrated_nll: float

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values."""
        return asdict(self)


def evaluate_training(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str],
    train: Trainer | None = None,
    train_rows: RowTrainer | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> HeadEvaluation:
    """Evaluate training on ``embeddings: (n, D)`` and ``labels: (n,)`` in [0, C).

    ``train(x, y)`` fits a head (default: :func:`models.training.train_head` with
    ``class_names``). ``train_rows(train, held_out)``, when given, is used instead: it gets
    the positions (into ``labels``) to train on and those held out, which it must not learn
    from in any form. Needs at least :data:`MIN_LABELS` labels of at least 2 classes; a
    class with a single label is predicted by a head that never saw it, which is honest.
    """
    x, y, names = _check(embeddings, labels, class_names, folds)
    simple = train or partial(train_head, class_names=names, backbone_id="evaluation")

    def fit_rows(inside: np.ndarray, outside: np.ndarray) -> TrainedHead:
        return simple(x[inside], y[inside])

    fitter = train_rows or fit_rows

    def fit(train_mask: np.ndarray) -> TrainedHead:
        return fitter(np.flatnonzero(train_mask), np.flatnonzero(~train_mask))

    if len(y) >= HOLDOUT_FROM:
        groups = _stratified_groups(y, round(1 / HOLDOUT_SHARE), seed)
        held_out = groups == 0
        method = f"held-out {HOLDOUT_SHARE:.0%}"
        logits = fit(~held_out).logits(x[held_out])
        y_eval = y[held_out]
        parts = _stratified_groups(y_eval, 2, seed + 1)
    else:
        parts = _stratified_groups(y, min(folds, len(y) // 2), seed)
        method = f"{parts.max() + 1}-fold cross-validation"
        logits = np.empty((len(y), len(names)))
        for part in np.unique(parts):
            inside = parts == part
            logits[inside] = fit(~inside).logits(x[inside])
        y_eval = y
    return _summarise(method, len(y), logits, y_eval, parts, names)


def _summarise(
    method: str,
    n_labels: int,
    logits: np.ndarray,
    y: np.ndarray,
    parts: np.ndarray,
    names: list[str],
) -> HeadEvaluation:
    probs = softmax(logits)
    correct = probs.argmax(axis=1) == y
    recall: dict[str, float | None] = {}
    for index, name in enumerate(names):
        of_class = y == index
        recall[name] = float(correct[of_class].mean()) if of_class.any() else None
    calibrated = np.empty_like(probs)
    for part in np.unique(parts):
        inside = parts == part
        others = ~inside if (~inside).any() else inside
        t = fit_temperature(logits[others], y[others])
        calibrated[inside] = softmax(logits[inside], temperature=t)
    picked = calibrated[np.arange(len(y)), y]
    return HeadEvaluation(
        method=method,
        n_labels=n_labels,
        n_evaluated=len(y),
        accuracy=float(correct.mean()),
        per_class_recall=recall,
        ece=expected_calibration_error(probs, y),
        nll=negative_log_likelihood(logits, y),
        temperature=fit_temperature(logits, y),
        calibrated_ece=expected_calibration_error(calibrated, y),
        calibrated_nll=float(-np.log(np.clip(picked, 1e-300, None)).mean()),
    )


def _stratified_groups(y: np.ndarray, n_groups: int, seed: int) -> np.ndarray:
    """Group ``(n,)`` in [0, n_groups) of each label, each class dealt round-robin at random."""
    rng = np.random.default_rng(seed)
    groups = np.empty(len(y), dtype=np.int64)
    offset = 0
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        groups[members] = (offset + np.arange(len(members))) % n_groups
        offset += len(members)
    return groups


def _check(
    embeddings: np.ndarray, labels: np.ndarray, class_names: Sequence[str], folds: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    names = list(class_names)
    if x.ndim != 2 or y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"expected embeddings (n, D) and integer labels (n,), got {x.shape} and {y.shape}"
        )
    if len(y) < MIN_LABELS or np.unique(y).size < 2:
        raise ValueError(
            f"expected at least {MIN_LABELS} labels of at least 2 classes, got {len(y)} "
            f"labels of {np.unique(y).size} classes"
        )
    if y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"expected labels in [0, {len(names)})")
    if folds < 2:
        raise ValueError(f"expected folds >= 2, got {folds}")
    return x, y.astype(np.int64), names
