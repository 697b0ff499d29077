"""A linear head trained on confirmed labels plus the pool's pseudo-labels.

Labels are spread over the pool's kNN graph (:mod:`models.label_spreading`); the pool images
whose spread label is certain enough become pseudo-labeled rows, weighted by their certainty
and balanced across classes, beside the confirmed rows at weight 1. The head itself is the
usual linear softmax layer (:func:`models.training.train_head`), so it predicts any image,
in the pool or not, and everything downstream of a head (calibration, export, selection)
is unchanged. Its ``n_train`` and training metrics count confirmed labels only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.head import TrainedHead, head_version
from models.knn_search import fit_basis
from models.label_spreading import spread_labels
from models.training import train_head, training_metrics

RowReader = Callable[[np.ndarray], np.ndarray]
# Wider embeddings are projected on the training rows' top principal axes before the fit
# (tens of thousands of pseudo-labeled rows make a full-width fit slow); the head is folded
# back onto the full embedding, so it predicts raw embeddings like any other head.
PROJECTED_DIMS = 128
# L-BFGS's first step: 1.0, the step its line search is built around. Tens of thousands of
# pseudo-labeled rows make each evaluation dear; from train_head's cautious 0.01 the search
# spends about four evaluations an iteration extrapolating (half the time, the same optimum).
_FIRST_STEP = 1.0
BASIS_SAMPLE = 16_384  # rows a projection's basis is fitted on, at most


@dataclass(frozen=True)
class SemiSupervisedSettings:
    """Hyperparameters, chosen on sklearn digits and a Fashion-MNIST validation split.

    ``k`` neighbours per image, affinity ``similarity ** power``, propagation strength
    ``alpha``, ``iterations`` of conjugate gradients; pool rows with certainty of at least
    ``min_certainty`` become pseudo-labels, at most ``max_pseudo`` of them (the most certain
    of each class, evenly shared), their weights summing to ``pseudo_weight`` times the
    number of confirmed labels.
    """

    k: int = 10
    power: float = 3.0
    alpha: float = 0.9
    iterations: int = 20
    min_certainty: float = 0.1
    max_pseudo: int = 50_000
    pseudo_weight: float = 2.0

    def __post_init__(self) -> None:
        if not (
            self.k >= 1
            and self.power > 0
            and 0 < self.alpha < 1
            and self.iterations >= 1
            and 0 <= self.min_certainty <= 1
            and self.max_pseudo >= 0
            and self.pseudo_weight >= 0
        ):
            raise ValueError(f"invalid semi-supervised settings: {self}")


@dataclass(frozen=True)
class PseudoLabels:
    """Pool rows chosen as pseudo-labels, their classes and training weights."""

    rows: np.ndarray
    labels: np.ndarray
    weights: np.ndarray


def pseudo_labels(
    affinity: torch.Tensor,
    labeled_rows: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    settings: SemiSupervisedSettings,
    *,
    exclude_rows: np.ndarray | None = None,
) -> PseudoLabels:
    """Spread ``labels`` and keep the certain unlabeled rows (see :class:`SemiSupervisedSettings`).

    ``exclude_rows`` never become pseudo-labels (images held out for evaluation).
    Deterministic: ties in certainty are broken by row number.
    """
    spread = spread_labels(
        affinity,
        labeled_rows,
        labels,
        n_classes,
        alpha=settings.alpha,
        iterations=settings.iterations,
    )
    candidate = spread.certainty >= max(settings.min_certainty, 1e-12)
    candidate[np.asarray(labeled_rows, dtype=np.int64)] = False
    if exclude_rows is not None:
        candidate[np.asarray(exclude_rows, dtype=np.int64)] = False
    per_class = settings.max_pseudo // n_classes
    chosen = []
    for c in range(n_classes):
        rows = np.flatnonzero(candidate & (spread.labels == c))
        order = np.lexsort((rows, -spread.certainty[rows]))
        chosen.append(rows[order[:per_class]])
    rows = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    classes = spread.labels[rows]
    weights = spread.certainty[rows].copy()
    if rows.size:
        counts = np.bincount(classes, minlength=n_classes).astype(np.float64)
        weights /= counts[classes]  # each class's pseudo-labels weigh alike in total
        weights *= settings.pseudo_weight * len(labels) / weights.sum()
    return PseudoLabels(rows.astype(np.int64), classes.astype(np.int64), weights)


def train_semi_supervised_head(
    pool_embeddings: np.ndarray | RowReader,
    affinity: torch.Tensor,
    labeled_rows: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str],
    backbone_id: str,
    settings: SemiSupervisedSettings = SemiSupervisedSettings(),
    epochs: int = 300,
    weight_decay: float = 1e-3,
    seed: int = 0,
    exclude_rows: np.ndarray | None = None,
    projection: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedHead:
    """A head on ``labels`` of pool rows ``labeled_rows`` and the pool's pseudo-labels.

    ``pool_embeddings`` is the pool's ``(n, D)`` matrix, or a function returning the rows
    asked for (so a memory-mapped store is read only where needed). ``affinity`` is the
    pool's normalised kNN affinity (row ``i`` is pool row ``i``), from
    :func:`models.label_spreading.affinity_matrix`. ``exclude_rows`` are never pseudo-labeled.
    ``projection = (mean (D,), basis (D, d))`` says the pool rows given are already projected
    as ``(x - mean) @ basis`` (see :func:`pool_projection`); the head is folded back onto
    the D-dimensional embedding.
    """
    read = pool_embeddings if callable(pool_embeddings) else _reader(pool_embeddings)
    rows = np.asarray(labeled_rows, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    pseudo = pseudo_labels(affinity, rows, y, len(class_names), settings, exclude_rows=exclude_rows)
    train_rows = np.concatenate([rows, pseudo.rows])
    x = np.asarray(read(train_rows), dtype=np.float64)
    mean, basis = _projection(x) if projection is None else projection
    inputs = x if basis is None or projection is not None else (x - mean) @ basis
    head = train_head(
        inputs,
        np.concatenate([y, pseudo.labels]),
        class_names=class_names,
        backbone_id=backbone_id,
        epochs=epochs,
        lr=_FIRST_STEP,
        weight_decay=weight_decay,
        seed=seed,
        sample_weight=np.concatenate([np.ones(len(y)), pseudo.weights]),
        progress=progress,
    )
    metrics = training_metrics(head, inputs[: len(rows)], y)  # on confirmed labels only
    if basis is not None:
        head = _unprojected(head, mean, np.asarray(basis, dtype=np.float64))
    head.n_train = len(y)
    head.metrics = {**metrics, "pseudo_labels": float(len(pseudo.rows))}
    return head


def _reader(matrix: np.ndarray) -> RowReader:
    x = np.asarray(matrix)
    if x.ndim != 2:
        raise ValueError(f"expected pool embeddings of shape (n, D), got {x.shape}")
    return lambda rows: x[rows]


def pool_projection(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, basis (D, PROJECTED_DIMS))`` of a pool from ``sample`` rows; None if narrow.

    A pool's rows projected once, ``(x - mean) @ basis``, serve every training on it.
    """
    mean, basis = _projection(np.asarray(sample, dtype=np.float64))
    return None if basis is None else (mean, basis)


def _projection(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The mean and top ``PROJECTED_DIMS`` principal axes ``(D, dims)`` of ``x``, or None."""
    mean = x.mean(axis=0)
    if x.shape[1] <= PROJECTED_DIMS or len(x) <= PROJECTED_DIMS:
        return mean, None
    step = -(-len(x) // BASIS_SAMPLE)  # every step-th row: deterministic
    sample = np.ascontiguousarray(x[::step] - mean, dtype=np.float32)
    return mean, fit_basis(sample, PROJECTED_DIMS).astype(np.float64)


def _unprojected(head: TrainedHead, mean: np.ndarray, basis: np.ndarray) -> TrainedHead:
    """``head`` on ``(x - mean) @ basis`` as one on ``x``: ``W B^T x + b - W B^T mean``."""
    weight = head.state["weight"].double().numpy() @ basis.T
    bias = head.state["bias"].double().numpy() - weight @ mean
    state = {"weight": torch.from_numpy(weight).float(), "bias": torch.from_numpy(bias).float()}
    head.state = state
    head.embedding_dim = basis.shape[0]
    head.version = head_version(head.backbone_id, head.class_names, state)
    return head
