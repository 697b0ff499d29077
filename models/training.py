"""Training a linear softmax head on frozen embeddings (a linear probe)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch
from torch.nn import functional as F

from models.head import TrainedHead, head_version

# Training stops once one step improves the objective by less than this (relative).
_TOLERANCE = 1e-7
# Function evaluations allowed to the line search of each L-BFGS iteration.
_MAX_LINE_SEARCH = 25
# Spreads below this fraction of the typical feature spread are raised to it.
_STD_FLOOR = 0.1


def train_head(
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: Sequence[str],
    backbone_id: str,
    epochs: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-3,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainedHead:
    """Fit a softmax layer to ``embeddings: (n, D)`` and ``labels: (n,)`` in [0, C).

    Features are standardised with the training set's mean and spread, then a linear layer
    is trained on the CPU with full-batch L-BFGS (``epochs`` iterations at most, ``lr`` its
    initial step, stopping early once converged) on the cross-entropy plus an L2 penalty
    ``weight_decay / 2 * |W|^2``. The standardisation is folded into the returned head's
    weights. Classes without examples still get a column (C is ``len(class_names)``). The
    result depends only on the inputs and ``seed``. ``progress(epoch, epochs)`` is called
    after each iteration, with ``(epochs, epochs)`` last.

    ``sample_weight: (n,)`` non-negative weights turn the mean cross-entropy into a weighted
    mean (used for down-weighted pseudo-labels); None weighs every row alike.
    """
    x, y = _check_inputs(embeddings, labels, class_names)
    weights = _check_weights(sample_weight, len(y))
    options = _Options(epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed)
    mean, std = x.mean(axis=0), _feature_scale(x)
    standardised = torch.from_numpy(((x - mean) / std).astype(np.float32))
    weight, bias = _fit_softmax(
        standardised, torch.from_numpy(y), weights, len(class_names), options, progress
    )
    state = _fold_standardisation(weight, bias, mean, std)
    names = list(class_names)
    head = TrainedHead(
        state=state,
        class_names=names,
        backbone_id=backbone_id,
        embedding_dim=x.shape[1],
        version=head_version(backbone_id, names, state),
        n_train=len(y),
        metrics={},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    head.metrics = training_metrics(head, x, y)
    return head


@dataclass(frozen=True)
class _Options:
    epochs: int
    lr: float
    weight_decay: float
    seed: int

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(
                "expected epochs >= 1, lr > 0, weight_decay >= 0; "
                f"got {self.epochs}, {self.lr}, {self.weight_decay}"
            )


def _fold_standardisation(
    weight: torch.Tensor, bias: torch.Tensor, mean: np.ndarray, std: np.ndarray
) -> dict[str, torch.Tensor]:
    """Weights acting on raw embeddings: ``W (x - mean) / std + b = (W / std) x + b'``."""
    folded_weight = weight.double() / torch.from_numpy(std)
    folded_bias = bias.double() - folded_weight @ torch.from_numpy(mean)
    return {"weight": folded_weight.float(), "bias": folded_bias.float()}


def _feature_scale(x: np.ndarray) -> np.ndarray:
    """Per-feature spread of ``x: (n, D)``, floored at a fraction of the typical spread.

    Without the floor, a feature that barely varies in the training set would be scaled up
    enormously and dominate the logits of any new image in which it happens to fire.
    """
    std = x.std(axis=0)
    typical = max(float(np.median(std)), float(std.mean()))
    return np.maximum(std, _STD_FLOOR * typical if typical > 0 else 1.0)


def _fit_softmax(
    x: torch.Tensor,
    y: torch.Tensor,
    sample_weight: torch.Tensor | None,
    n_classes: int,
    options: _Options,
    progress: Callable[[int, int], None] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``mean cross-entropy + weight_decay / 2 * |weight|^2`` with full-batch L-BFGS.

    The problem is convex, so L-BFGS with a line search finds its minimum in few steps.
    The L2 penalty (not applied to the bias) keeps the weights of rarely active features and
    of classes without examples small, so unseen inputs cannot produce extreme logits.
    """
    generator = torch.Generator().manual_seed(options.seed)
    weight = (0.01 * torch.randn(n_classes, x.shape[1], generator=generator)).requires_grad_()
    bias = torch.zeros(n_classes, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=options.lr,
        max_iter=1,  # one iteration per step() call, so progress can be reported
        max_eval=1 + _MAX_LINE_SEARCH,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad(set_to_none=True)
        penalty = 0.5 * options.weight_decay * weight.square().sum()
        logits = F.linear(x, weight, bias)
        if sample_weight is None:
            loss = F.cross_entropy(logits, y) + penalty
        else:
            losses = F.cross_entropy(logits, y, reduction="none")
            loss = (losses * sample_weight).sum() / sample_weight.sum() + penalty
        loss.backward()
        return loss

    previous = math.inf
    with torch.enable_grad():
        for epoch in range(1, options.epochs + 1):
            loss = float(optimiser.step(closure).detach())
            converged = abs(previous - loss) <= _TOLERANCE * max(1.0, abs(loss))
            previous = loss
            if progress is not None:
                progress(options.epochs if converged else epoch, options.epochs)
            if converged:
                break
    return weight.detach(), bias.detach()


def training_metrics(head: TrainedHead, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``train_accuracy`` and ``train_loss`` (mean cross-entropy) of ``head`` on ``x, y``."""
    logits = head.logits(x)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {
        "train_accuracy": float((logits.argmax(axis=1) == y).mean()),
        "train_loss": float(-log_probs[np.arange(len(y)), y].mean()),
    }


def _check_weights(sample_weight: np.ndarray | None, n: int) -> torch.Tensor | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n,) or not np.all(np.isfinite(weights)) or weights.min() < 0:
        raise ValueError(f"expected {n} finite non-negative sample weights, got {weights.shape}")
    if weights.sum() <= 0:
        raise ValueError("expected sample weights with a positive sum")
    return torch.from_numpy(weights.astype(np.float32))


def _check_inputs(
    embeddings: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(x float64 (n, D), y int64 (n,))``."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected embeddings of shape (n_images, D) with n >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("expected finite embeddings, got NaN or infinity")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"expected integer labels of shape ({x.shape[0]},), got {y.dtype} {y.shape}"
        )
    names = list(class_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"expected at least 2 distinct class names, got {names}")
    if y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"expected labels in [0, {len(names)}), got [{y.min()}, {y.max()}]")
    return x, y.astype(np.int64)
