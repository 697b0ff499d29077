"""Judging and calibrating a freshly trained head on labels it did not train on.

`models.evaluation.evaluate_training` re-trains on part of the labels and predicts the rest
(cross-validation, or a held-out share for many labels); the temperature it fits on those
out-of-sample logits calibrates the head trained on every label. The temperature is part of
the head's checkpoint and version id, so a version always predicts with the same one.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np

from models.calibration import with_temperature
from models.evaluation import (
    DEFAULT_FOLDS,
    MIN_LABELS,
    HeadEvaluation,
    RowTrainer,
    evaluate_training,
)
from models.head import TrainedHead
from models.training import train_head

log = logging.getLogger(__name__)


def evaluate_and_calibrate(
    head: TrainedHead,
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    train_rows: RowTrainer | None = None,
    folds: int = DEFAULT_FOLDS,
) -> tuple[TrainedHead, HeadEvaluation | None]:
    """``head`` calibrated by temperature, and its evaluation; ``(head, None)`` if too few labels.

    ``embeddings: (n, D)`` and ``labels: (n,)`` are what ``head`` was trained on; each fold's
    head is trained the same way (same classes, backbone and ``epochs``), or by
    ``train_rows(train, held_out)`` when the head needs more than the fold's labels;
    ``folds`` for cross-validation below ``models.evaluation.HOLDOUT_FROM`` labels.
    """
    if len(labels) < MIN_LABELS or np.unique(labels).size < 2:
        log.info("%d labels of %d classes: not evaluated", len(labels), np.unique(labels).size)
        return head, None
    trainer = partial(
        train_head, class_names=head.class_names, backbone_id=head.backbone_id, epochs=epochs
    )
    evaluation = evaluate_training(
        embeddings,
        labels,
        class_names=head.class_names,
        train=trainer,
        train_rows=train_rows,
        folds=folds,
    )
    return with_temperature(head, evaluation.temperature), evaluation
