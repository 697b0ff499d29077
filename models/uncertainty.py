"""Uncertainty scores for choosing which images to label next.

Every strategy maps class probabilities ``probs: (n_images, n_classes)`` to scores
``(n_images,)`` with one contract: a higher score means the image is more worth labeling.
Strategies are looked up by name with :func:`get_strategy`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_SUM_TOLERANCE = 1e-3


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``probs: (n_images, n_classes)``.

    Zero probabilities contribute zero. Ranges from 0 (one-hot) to ``log(n_classes)``.
    """
    p = _validate(probs)
    logs = np.log(np.clip(p, np.finfo(np.float64).tiny, None))
    # Clamped so that rounding never gives -0.0 or a tiny negative value.
    return np.maximum(-(p * logs).sum(axis=1), 0.0)


def margin(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_top1 - p_top2)`` for each row of ``probs: (n_images, n_classes)``.

    1 when the two most likely classes tie, 0 when the top class is certain.
    """
    p = _validate(probs)
    if p.shape[1] == 1:
        return 1.0 - p[:, 0]
    top_two = -np.partition(-p, 1, axis=1)[:, :2]
    return 1.0 - (top_two[:, 0] - top_two[:, 1])


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """``1 - p_max`` for each row of ``probs: (n_images, n_classes)``."""
    return 1.0 - _validate(probs).max(axis=1)


def random_scores(probs: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Uniform random scores in [0, 1), one per row of ``probs``: the baseline to beat."""
    p = _validate(probs)
    return np.random.default_rng(seed).random(p.shape[0])


_STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "entropy": entropy,
    "margin": margin,
    "least_confidence": least_confidence,
    "random": random_scores,
}


def available_strategies() -> list[str]:
    """Names accepted by :func:`get_strategy`."""
    return sorted(_STRATEGIES)


def get_strategy(name: str) -> Callable[..., np.ndarray]:
    """The scoring function called ``name``; ValueError listing the names otherwise."""
    try:
        return _STRATEGIES[name]
    except KeyError:
        valid = ", ".join(available_strategies())
        raise ValueError(f"unknown strategy {name!r}; expected one of: {valid}") from None


def rank_by_score(scores: np.ndarray, *, k: int | None = None) -> np.ndarray:
    """Indices of ``scores: (n_images,)`` from highest to lowest score.

    Ties keep the lower index first. ``k`` keeps only the first ``k`` (at most ``n``).
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected scores of shape (n_images,), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("expected finite scores, got NaN or infinity")
    if k is not None and k < 0:
        raise ValueError(f"expected k >= 0 or None, got {k}")
    order = np.argsort(-values, kind="stable")
    return order if k is None else order[:k]


def _validate(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"expected probs of shape (n_images, n_classes), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("expected finite probabilities, got NaN or infinity")
    if np.any(p < 0):
        raise ValueError("expected non-negative probabilities")
    sums = p.sum(axis=1)
    worst = np.abs(sums - 1.0).max(initial=0.0)
    if worst > _SUM_TOLERANCE:
        raise ValueError(
            f"expected rows summing to 1 (within {_SUM_TOLERANCE}), one is off by {worst:.4g}"
        )
    return p


def mutual_information(member_probs: np.ndarray) -> np.ndarray:
    """BALD score ``(n_images,)``: the entropy of the mean prediction minus the mean entropy.

    ``member_probs: (n_members, n_images, n_classes)`` holds the predictions of an ensemble
    or of posterior samples. Zero when all members agree; at most ``log(n_classes)``.
    """
    members = np.asarray(member_probs, dtype=np.float64)
    if members.ndim != 3 or members.shape[0] < 1:
        raise ValueError(
            f"expected member_probs of shape (n_members, n_images, n_classes), got {members.shape}"
        )
    n_members, n_images, n_classes = members.shape
    per_member = entropy(members.reshape(-1, n_classes)).reshape(n_members, n_images)
    return np.maximum(entropy(members.mean(axis=0)) - per_member.mean(axis=0), 0.0)
