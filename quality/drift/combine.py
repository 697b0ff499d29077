"""Holm's step-down correction, the multiple-testing control the drift checks share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values ``(k,)`` in the order given, for raw ``p_values: (k,)``.

    Rejecting every hypothesis whose adjusted p-value is at most ``alpha`` keeps the chance
    of any false rejection at most ``alpha``, whatever the dependence between the tests.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"expected a non-empty vector of p-values in [0, 1], got {p!r}")
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
