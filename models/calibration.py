"""Temperature scaling and calibration error.

A head's probabilities are ``softmax(logits / T)``. :func:`fit_temperature` picks the ``T``
that minimises the negative log-likelihood of held-out logits, which leaves the predicted
class unchanged and makes confidence match accuracy more closely.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from models.head import TrainedHead, head_version

ECE_BINS = 15
# Golden-section search for log T over this interval (T from 0.02 to 50).
_LOG_T_RANGE = (math.log(0.02), math.log(50.0))
_SEARCH_STEPS = 60
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def softmax(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Probabilities ``(n, C)`` float64 of ``logits: (n, C)`` divided by ``temperature``."""
    z = _logits(logits) / _positive(temperature)
    z -= z.max(axis=1, keepdims=True)
    exp = np.exp(z)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(
    logits: np.ndarray, labels: np.ndarray, *, temperature: float = 1.0
) -> float:
    """Mean ``-log p(label)`` in nats of ``logits: (n, C)`` at ``temperature``."""
    z = _logits(logits) / _positive(temperature)
    y = _labels(labels, z)
    z -= z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(y)), y]).mean())


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS
) -> float:
    """ECE of ``probs: (n, C)`` against ``labels: (n,)``, with ``bins`` equal-width bins.

    The confidence (top probability) range [0, 1] is cut into ``bins`` intervals; ECE is the
    mean over images of ``|accuracy - mean confidence|`` of the image's bin.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"expected probs of shape (n >= 1, n_classes), got {p.shape}")
    y = _labels(labels, p)
    if bins < 1:
        raise ValueError(f"expected bins >= 1, got {bins}")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(
        np.bincount(which, weights=correct, minlength=bins)
        - np.bincount(which, weights=confidence, minlength=bins)
    )
    return float(gap.sum() / counts.sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.02, 50] minimising the NLL of held-out ``logits: (n, C)``.

    Golden-section search over ``log T`` (the NLL is unimodal in it), accurate to ~1e-9
    relative. Needs at least one image; with a handful the estimate is rough.
    """
    z = _logits(logits)
    y = _labels(labels, z)
    low, high = _LOG_T_RANGE

    def loss(log_t: float) -> float:
        return negative_log_likelihood(z, y, temperature=math.exp(log_t))

    a, b = low + (1 - _GOLDEN) * (high - low), low + _GOLDEN * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(_SEARCH_STEPS):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = low + (1 - _GOLDEN) * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + _GOLDEN * (high - low)
            fb = loss(b)
    return math.exp((low + high) / 2.0)


def with_temperature(head: TrainedHead, temperature: float) -> TrainedHead:
    """A copy of ``head`` whose probabilities use ``temperature``, with its own version."""
    t = _positive(temperature)
    version = head_version(head.backbone_id, head.class_names, head.state, temperature=t)
    return replace(head, temperature=t, version=version)


def _positive(temperature: float) -> float:
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"expected a finite temperature > 0, got {temperature}")
    return t


def _logits(logits: np.ndarray) -> np.ndarray:
    z = np.array(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"expected logits of shape (n >= 1, n_classes >= 2), got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("expected finite logits, got NaN or infinity")
    return z


def _labels(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (scores.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"expected integer labels of shape ({scores.shape[0]},), got {y.shape}")
    if y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"expected labels in [0, {scores.shape[1]})")
    return y.astype(np.int64)
