"""Label drift: confirmed labels against the guide's class priors.

A label with prior 0, or one the guide does not have, cannot occur when the labels follow
the priors, so a single one is a certain drift (p-value 0) and is named in the result.
Classes with prior 0 and no labels drop out of the test.

The chi-square null is multinomial: each label an independent draw from the priors, as when
the priors are a declared law. A batch drawn without replacement from a finite population of
``N`` images whose class shares *are* the priors has hypergeometric counts, whose covariance is
the multinomial's times ``f = (N - n) / (N - 1)``; the plain test is then conservative, and
``population_size=N`` divides the statistic by ``f`` (the finite-population correction), which
restores its chi-square null.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from scipy import stats

from guides.schema import Guide
from quality.drift._checks import check_alpha, counts_vector
from quality.drift.counts import ChiSquare, goodness_of_fit
from quality.drift.results import LabelDriftResult


def prior_drift(
    counts: np.ndarray,
    priors: np.ndarray,
    *,
    alpha: float = 0.05,
    label_names: Sequence[str] | None = None,
    unknown: Mapping[str, int] | None = None,
    population_size: int | None = None,
) -> LabelDriftResult:
    """Chi-square goodness of fit of label ``counts: (C,)`` to ``priors: (C,)`` (sum 1).

    ``unknown`` counts labels seen outside the ``C`` classes, by name; any of them, or a count
    in a class with prior 0, makes the p-value 0. ``population_size`` (None: labels drawn
    independently from the priors) is the size of the finite population, with class shares
    ``priors``, that the labels were drawn from without replacement.
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
    if population_size is not None:
        fit = finite_population(fit, population_size, int(observed.sum()))
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
        population_size=population_size,
    )


def finite_population(fit: ChiSquare, population_size: int, n: int) -> ChiSquare:
    """``fit`` of ``n`` labels drawn without replacement from ``population_size``, corrected."""
    if population_size <= max(n, 1):
        raise ValueError(f"expected population_size above the {n} labels, got {population_size}")
    if fit.dof == 0:
        return fit
    statistic = fit.statistic * (population_size - 1) / (population_size - n)
    return replace(fit, statistic=statistic, p_value=float(stats.chi2.sf(statistic, fit.dof)))


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
