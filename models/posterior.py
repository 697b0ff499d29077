"""Distributions over the linear head, for disagreement-based selection (BALD).

A single linear head has no dropout, so its uncertainty about its own weights comes from
either an ensemble of heads (:func:`ensemble_probs`) or a diagonal Laplace approximation of
the posterior over the head's weights (:func:`laplace_probs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.head import TrainedHead

# The L2 penalty train_head applies to standardised weights (its default weight_decay).
DEFAULT_WEIGHT_DECAY = 1e-3


def ensemble_probs(heads: Sequence[TrainedHead], embeddings: np.ndarray) -> np.ndarray:
    """Probabilities ``(S, n, C)`` of each of ``S >= 2`` heads for ``embeddings: (n, D)``."""
    if len(heads) < 2:
        raise ValueError(f"expected an ensemble of at least 2 heads, got {len(heads)}")
    return np.stack([head.predict_proba(embeddings).astype(np.float64) for head in heads])


def laplace_probs(
    head: TrainedHead,
    labeled_embeddings: np.ndarray,
    labeled_labels: np.ndarray,
    embeddings: np.ndarray,
    *,
    samples: int = 20,
    seed: int = 0,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
) -> np.ndarray:
    """Probabilities ``(samples, n, C)`` for ``embeddings: (n, D)`` under weight samples.

    The weights are drawn from ``N(W, diag(H)^-1)``, where ``H`` is the diagonal of the
    Hessian of the training objective at the head's weights ``W`` (``C x D``): the data term
    ``sum_i p_ic (1 - p_ic) x_id^2`` over ``labeled_embeddings: (m, D)``, plus the prior
    ``m * weight_decay * s_d^2`` that train_head's penalty on standardised weights means for
    raw ones (``s_d``: the spread of feature d over the pool and the labeled embeddings).
    The bias is kept fixed. Fewer labels give a wider posterior and more disagreement.
    ``labeled_labels`` is accepted for symmetry with refitting methods and checked only.
    """
    pool = np.asarray(embeddings, dtype=np.float64)
    labeled = np.asarray(labeled_embeddings, dtype=np.float64).reshape(-1, head.embedding_dim)
    if np.asarray(labeled_labels).shape != (labeled.shape[0],):
        raise ValueError(f"expected {labeled.shape[0]} labeled_labels")
    if samples < 2 or weight_decay <= 0:
        raise ValueError(
            f"expected samples >= 2 and weight_decay > 0, got {samples}, {weight_decay}"
        )
    logits = head.logits(pool)
    precision = _diagonal_precision(head, labeled, pool, weight_decay)
    rng = np.random.default_rng(seed)
    out = np.empty((samples, *logits.shape))
    scale = 1.0 / np.sqrt(precision)
    for s in range(samples):
        noise = rng.standard_normal(precision.shape) * scale
        out[s] = _softmax(logits + pool @ noise.T)
    return out


def _diagonal_precision(
    head: TrainedHead, labeled: np.ndarray, pool: np.ndarray, weight_decay: float
) -> np.ndarray:
    """Posterior precision ``(C, D)`` of each weight, floored by the prior."""
    both = np.concatenate([labeled, pool])
    spread = both.std(axis=0)
    typical = max(float(np.median(spread)), float(spread.mean()), 1e-12)
    spread = np.maximum(spread, 0.1 * typical)
    m = labeled.shape[0]
    prior = max(m, 1) * weight_decay * spread**2
    if m == 0:
        return np.broadcast_to(prior, (len(head.class_names), pool.shape[1])).copy()
    p = _softmax(head.logits(labeled))
    data = (p * (1.0 - p)).T @ (labeled**2)
    return data + prior[None, :]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
