"""Step-down corrections that combine several drift tests into one decision.

:func:`sidak_holm` is the control the drift checks share; :func:`holm` is its Bonferroni form.

The weighted form (Holm 1979, section 5; Benjamini & Hochberg 1997) gives hypothesis ``i`` a
weight ``w_i > 0`` with ``sum w = 1``: at each step the hypothesis with the smallest
``p_i / w_i`` among those left is rejected when ``p_i <= alpha * w_i / (sum of the weights
left)``. Under any dependence the family-wise error stays at most ``alpha`` (a weighted
Bonferroni closed test); equal weights give Holm's plain procedure.

The Sidak form (Sidak 1967; Holland & Copenhaver 1987) replaces the level ``alpha * w / W`` by
``1 - (1 - alpha) ** (w / W)``, slightly larger. Its smallest adjusted p-value is the weighted
Tippett min-p ``min_i 1 - (1 - p_i) ** (1 / w_i)``: exactly uniform under the global null when
the tests are independent, where Holm's ``min_i p_i / w_i`` piles up at 1 (capped). The
family-wise error is at most ``alpha`` for independent or positively orthant-dependent tests,
and at most ``-log(1 - alpha)`` (0.0513 at ``alpha = 0.05``) whatever the dependence. Every
hypothesis Holm rejects, Sidak-Holm rejects too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(
    p_values: Sequence[float] | np.ndarray,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Holm-adjusted p-values ``(k,)`` in the order given, for raw ``p_values: (k,)``.

    Rejecting every hypothesis whose adjusted p-value is at most ``alpha`` keeps the chance
    of any false rejection at most ``alpha``, whatever the dependence between the tests.
    ``weights: (k,)`` (positive, summing to 1; equal when None) share ``alpha`` unequally:
    hypothesis ``i`` alone is rejected at ``p_i <= w_i * alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"expected a non-empty vector of p-values in [0, 1], got {p!r}")
    w = np.ones(p.size) if weights is None else check_weights(weights, p.size)
    order = np.argsort(p / w, kind="stable")
    left = np.cumsum(w[order][::-1])[::-1]  # the weight of the hypotheses not yet rejected
    scaled = np.minimum(1.0, p[order] * left / w[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def sidak_holm(
    p_values: Sequence[float] | np.ndarray,
    *,
    weights: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Sidak-Holm adjusted p-values ``(k,)`` in the order given, for raw ``p_values: (k,)``.

    ``weights: (k,)`` (positive, summing to 1; equal when None) as in :func:`holm`: hypothesis
    ``i`` alone is rejected at ``p_i <= 1 - (1 - alpha) ** w_i``. The smallest adjusted value
    is the global p-value ``min_i 1 - (1 - p_i) ** (1 / w_i)``, never above :func:`holm`'s.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"expected a non-empty vector of p-values in [0, 1], got {p!r}")
    w = np.ones(p.size) / p.size if weights is None else check_weights(weights, p.size)
    with np.errstate(divide="ignore"):
        log_keep = np.log1p(-p)  # log(1 - p): -inf at p = 1
    order = np.argsort(-log_keep / w, kind="stable")  # the same order at every step
    left = np.cumsum(w[order][::-1])[::-1]  # the weight of the hypotheses not yet rejected
    with np.errstate(invalid="ignore"):
        exponent = np.where(np.isinf(log_keep[order]), -np.inf, log_keep[order] * left / w[order])
    scaled = -np.expm1(exponent)
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def check_weights(weights: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """``weights`` as a float vector ``(k,)``; ValueError unless positive and summing to 1."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,) or not np.all(np.isfinite(w) & (w > 0)) or abs(w.sum() - 1.0) > 1e-9:
        raise ValueError(f"expected {k} positive weights summing to 1, got {w!r}")
    return w
