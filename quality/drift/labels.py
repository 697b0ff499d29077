"""Label drift: confirmed labels against the guide's class priors.

A label with prior 0, or one the guide does not have, cannot occur when the labels follow
the priors, so a single one is a certain drift (p-value 0) and is named in the result.
Classes with prior 0 and no labels drop out of the test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from guides.schema import Guide
from quality.drift._checks import check_alpha, counts_vector
from quality.drift.counts import goodness_of_fit
from quality.drift.results import LabelDriftResult


def prior_drift(
    counts: np.ndarray,
    priors: np.ndarray,
    *,
    alpha: float = 0.05,
    label_names: Sequence[str] | None = None,
    unknown: Mapping[str, int] | None = None,
) -> LabelDriftResult:
    """Chi-square goodness of fit of label ``counts: (C,)`` to ``priors: (C,)`` (sum 1).

    ``unknown`` counts labels seen outside the ``C`` classes, by name; any of them, or a count
    in a class with prior 0, makes the p-value 0.
    """
    alpha = check_alpha(alpha)
    observed = counts_vector(counts, name="counts")
    probs = np.asarray(priors, dtype=np.float64)
    if probs.shape != observed.shape or not np.isfinite(probs).all() or probs.min() < 0:
        raise ValueError(f"expected non-negative priors of shape {observed.shape}, got {probs!r}")
    if abs(probs.sum() - 1.0) > 1e-3:
        raise ValueError(f"expected priors summing to 1, got {probs.sum():.6g}")
    names = tuple(label_names) if label_names is not None else tuple(map(str, range(probs.size)))
    if len(names) != probs.size:
        raise ValueError(f"expected {probs.size} label names, got {len(names)}")
    extra = {name: n for name, n in (unknown or {}).items() if n > 0}
    impossible = [names[i] for i in np.flatnonzero((probs == 0) & (observed > 0))]
    impossible += sorted(extra)
    probs = probs / probs.sum()
    fit = goodness_of_fit(observed, probs)
    statistic, p_value = (float("inf"), 0.0) if impossible else (fit.statistic, fit.p_value)
    return LabelDriftResult(
        test="labels",
        statistic=statistic,
        p_value=p_value,
        threshold=alpha,
        drifted=p_value <= alpha,
        n_reference=0,
        n_new=int(observed.sum()) + sum(extra.values()),
        observed=observed,
        expected=probs * observed.sum(),
        degrees_of_freedom=fit.dof,
        pooled_classes=fit.pooled,
        label_names=names,
        impossible_labels=tuple(impossible),
    )


def label_drift(
    labels: Sequence[str], guide: Guide, *, alpha: float | None = None
) -> LabelDriftResult:
    """Confirmed ``labels`` (names, one per image) against ``guide.class_priors``.

    ``alpha`` defaults to the guide's ``thresholds.drift_significance``. ``n_reference`` is 0:
    the reference is the guide's priors, not a sample.
    """
    priors = guide.prior_vector()
    if priors is None:
        raise ValueError(f"guide {guide.name!r} {guide.version!r} has no class_priors to test")
    seen = Counter(labels)
    names = guide.label_names
    counts = np.array([seen.get(name, 0) for name in names], dtype=np.int64)
    unknown = {name: n for name, n in seen.items() if name not in names}
    level = guide.thresholds.drift_significance if alpha is None else alpha
    return prior_drift(counts, np.array(priors), alpha=level, label_names=names, unknown=unknown)
