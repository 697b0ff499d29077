"""Label spreading over a cosine kNN graph: soft labels for every pool image from a few labels.

The graph's affinities are ``max(similarity, 0) ** power``, symmetrised, and normalised as
``S = D^-1/2 W D^-1/2``. Spreading solves ``(I - alpha S) Z = Y`` for each class (``Y``: one
column per class, 1 on that class's labeled rows divided by the class's label count, so a
class with more labels does not flood the graph), by conjugate gradients: the matrix is
symmetric positive definite for ``alpha < 1``. Each row of ``Z``, clipped at zero and
normalised, is that image's pseudo-label distribution; its certainty is one minus its entropy
over ``log C``. Labeled rows keep their label with certainty 1.

This is the transductive step of Iscen et al. (2019), "Label Propagation for Deep
Semi-supervised Learning"; :mod:`models.semi_supervised` turns its output into a linear head.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SpreadLabels:
    """Per pool row: ``labels (n,)`` int64 (argmax class) and ``certainty (n,)`` in [0, 1]."""

    labels: np.ndarray
    certainty: np.ndarray


def affinity_matrix(
    neighbours: np.ndarray, similarities: np.ndarray, *, power: float
) -> torch.Tensor:
    """The symmetric normalised affinity ``S (n, n)`` as a sparse CSR float64 tensor.

    ``neighbours: (n, k)`` row numbers and ``similarities: (n, k)`` cosine similarities of
    each row's nearest neighbours (no self-loops). Rows without a positive affinity keep a
    zero row, so they get no label mass and certainty 0.
    """
    n, k = neighbours.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = np.asarray(neighbours, dtype=np.int64).ravel()
    weights = np.maximum(np.asarray(similarities, dtype=np.float64).ravel(), 0.0) ** power
    keep = (weights > 0) & (cols != rows)
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    index = torch.from_numpy(np.stack([np.concatenate([rows, cols]), np.concatenate([cols, rows])]))
    values = torch.from_numpy(np.concatenate([weights, weights]) / 2.0)
    symmetric = torch.sparse_coo_tensor(index, values, (n, n), check_invariants=False).coalesce()
    degree = torch.zeros(n, dtype=torch.float64).index_add_(
        0, symmetric.indices()[0], symmetric.values()
    )
    scale = torch.where(degree > 0, degree.rsqrt(), torch.zeros_like(degree))
    i, j = symmetric.indices()
    normalised = torch.sparse_coo_tensor(
        symmetric.indices(),
        symmetric.values() * scale[i] * scale[j],
        (n, n),
        check_invariants=False,
        is_coalesced=True,
    )
    with warnings.catch_warnings():  # CSR is marked beta; it multiplies 10x faster than COO
        warnings.simplefilter("ignore", UserWarning)
        return normalised.to_sparse_csr()


def spread_labels(
    affinity: torch.Tensor,
    labeled_rows: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    alpha: float,
    iterations: int,
) -> SpreadLabels:
    """Spread ``labels`` of ``labeled_rows`` over ``affinity`` (from :func:`affinity_matrix`).

    ``iterations`` conjugate-gradient steps at most; deterministic for its inputs.
    """
    n = affinity.shape[0]
    rows = np.asarray(labeled_rows, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"expected alpha in (0, 1), got {alpha}")
    if rows.shape != y.shape or rows.size == 0:
        raise ValueError("expected as many labels as labeled rows, and at least one")
    if rows.min() < 0 or rows.max() >= n or y.min() < 0 or y.max() >= n_classes:
        raise ValueError("labeled rows or labels out of range")
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    target = np.zeros((n, n_classes))
    target[rows, y] = 1.0 / counts[y]
    scores = _conjugate_gradient(affinity, alpha, torch.from_numpy(target), iterations).numpy()
    scores = np.maximum(scores, 0.0)
    total = scores.sum(axis=1, keepdims=True)
    spread = np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(spread > 0, spread * np.log(spread), 0.0).sum(axis=1)
    certainty = np.where(total[:, 0] > 0, 1.0 - entropy / np.log(n_classes), 0.0)
    predicted = spread.argmax(axis=1)
    predicted[rows] = y
    certainty[rows] = 1.0
    return SpreadLabels(predicted.astype(np.int64), np.clip(certainty, 0.0, 1.0))


def _conjugate_gradient(
    affinity: torch.Tensor, alpha: float, target: torch.Tensor, iterations: int
) -> torch.Tensor:
    """Solve ``(I - alpha S) Z = target`` column-wise, all columns at once."""

    def apply(z: torch.Tensor) -> torch.Tensor:
        return z - alpha * (affinity @ z)

    solution = torch.zeros_like(target)
    residual = target.clone()
    direction = residual.clone()
    norm = (residual * residual).sum(dim=0)
    floor = 1e-20 * norm.clamp(min=1e-300)
    for _ in range(iterations):
        product = apply(direction)
        step = norm / (direction * product).sum(dim=0).clamp(min=1e-300)
        solution += step * direction
        residual -= step * product
        new_norm = (residual * residual).sum(dim=0)
        if bool((new_norm <= floor).all()):
            break
        direction = residual + (new_norm / norm.clamp(min=1e-300)) * direction
        norm = new_norm
    return solution
