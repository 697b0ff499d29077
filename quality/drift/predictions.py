"""Black-box shift detection: a model's predicted classes and confidences against a reference.

Two tests on the model's outputs, predicted-class counts (chi-square homogeneity) and top-class
confidence (two-sample KS), combined by Sidak-Holm (:func:`sidak_holm`): the batch drifts when
either test rejects at its level, so the false-alarm rate is ``alpha`` for independent tests
(the two are close to it under the null) and at most ``-log(1 - alpha)`` whatever their
dependence; the batch p-value ``1 - (1 - min p) ** 2`` is uniform under the null.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from quality.drift._checks import check_alpha
from quality.drift.combine import sidak_holm
from quality.drift.counts import homogeneity
from quality.drift.results import CategoricalDriftResult, DriftResult, PredictionDriftResult

_SUM_TOLERANCE = 1e-3


def _probabilities(values: np.ndarray, name: str) -> np.ndarray:
    probs = np.asarray(values, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(f"expected {name} of shape (n_images, n_classes >= 2), got {probs.shape}")
    if not np.isfinite(probs).all() or probs.min() < 0.0 or probs.max() > 1.0:
        raise ValueError(f"expected {name} to hold probabilities in [0, 1]")
    if np.abs(probs.sum(axis=1) - 1.0).max() > _SUM_TOLERANCE:
        raise ValueError(f"expected each row of {name} to sum to 1")
    return probs


def class_drift(
    reference_classes: np.ndarray, new_classes: np.ndarray, *, n_classes: int, alpha: float = 0.05
) -> CategoricalDriftResult:
    """Chi-square homogeneity of class indices ``(m,)`` against ``(n,)``, in ``[0, n_classes)``."""
    alpha = check_alpha(alpha)
    sides = []
    for name, values in (("reference_classes", reference_classes), ("new_classes", new_classes)):
        array = np.asarray(values)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(f"expected integer {name} (n,), got {array.dtype} {array.shape}")
        if array.size and (array.min() < 0 or array.max() >= n_classes):
            raise ValueError(f"expected {name} in [0, {n_classes})")
        sides.append(np.bincount(array, minlength=n_classes))
    ref, new = sides
    test = homogeneity(ref, new)
    expected = (ref + new) * (new.sum() / max(1, ref.sum() + new.sum()))
    return CategoricalDriftResult(
        test="predicted_classes",
        statistic=test.statistic,
        p_value=test.p_value,
        threshold=alpha,
        drifted=test.p_value <= alpha,
        n_reference=int(ref.sum()),
        n_new=int(new.sum()),
        observed=new,
        expected=expected,
        degrees_of_freedom=test.dof,
        pooled_classes=test.pooled,
    )


def prediction_drift(
    reference_probs: np.ndarray, new_probs: np.ndarray, *, alpha: float = 0.05
) -> PredictionDriftResult:
    """Drift in a model's outputs: ``reference_probs: (m, C)`` against ``new_probs: (n, C)``."""
    ref = _probabilities(reference_probs, "reference_probs")
    new = _probabilities(new_probs, "new_probs")
    if ref.shape[1] != new.shape[1]:
        raise ValueError(f"expected the same n_classes, got {ref.shape[1]} and {new.shape[1]}")
    alpha = check_alpha(alpha)
    classes = class_drift(ref.argmax(1), new.argmax(1), n_classes=ref.shape[1], alpha=alpha)
    ks = stats.ks_2samp(ref.max(axis=1), new.max(axis=1))
    confidence = DriftResult(
        test="confidence",
        statistic=float(ks.statistic),
        p_value=float(ks.pvalue),
        threshold=alpha,
        drifted=float(ks.pvalue) <= alpha,
        n_reference=ref.shape[0],
        n_new=new.shape[0],
    )
    p_value = float(sidak_holm([classes.p_value, confidence.p_value]).min())
    return PredictionDriftResult(
        test="predictions",
        statistic=min(classes.p_value, confidence.p_value),
        p_value=p_value,
        threshold=alpha,
        drifted=p_value <= alpha,
        n_reference=ref.shape[0],
        n_new=new.shape[0],
        control="sidak-holm over predicted_classes and confidence (false alarms <= alpha if "
        "independent, <= -log(1 - alpha) for any dependence)",
        classes=classes,
        confidence=confidence,
    )
