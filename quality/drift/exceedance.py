"""Counting new images beyond the reference's upper quantiles, over a scan of quantiles.

Given ``m`` reference scores and ``n`` new scores that are exchangeable when nothing drifts,
let ``N_k`` count the new scores above the reference's ``k``-th largest. The chance that one
new score lands there is the ``k``-th largest of ``m`` uniforms, ``Beta(k, m + 1 - k)``, and
the new scores land independently given the reference, so ``N_k`` is beta-binomial.

For thresholds ``k_1 < ... < k_J`` the chances of the bins between consecutive thresholds are
the gaps of ``m`` sorted uniforms, ``Dirichlet(k_1, k_2 - k_1, ..., m + 1 - k_J)``, and the bin
counts are multinomial given them. The scan statistic is the smallest per-threshold mid-p
value; its null law (the joint law of ``N_{k_1}, ..., N_{k_J}``) is drawn from that
Dirichlet-multinomial model with a fixed seed, so the same counts always get the same
p-value. A single threshold needs no draws: its p-value is the beta-binomial mid-p.

Why scan: one threshold must trade noise (``n q`` ordinary images beyond the ``1 - q``
quantile) against signal (how many odd images get that far). A few images far from
everything stand out best at a small ``q``; many mildly odd ones at a larger ``q``. Taking the
most significant of a fixed 1-2-5 grid adapts to both, and the exact null law of the minimum
prices the choice (as higher criticism does for sparse mixtures, Donoho & Jin 2004).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import stats

NULL_DRAWS = 20_000


def thresholds(quantiles: Sequence[float], n_reference: int) -> tuple[int, ...]:
    """The distinct ranks ``k = floor(q (m + 1)) >= 1`` of ``quantiles``, ascending.

    Quantiles too small for ``n_reference`` (``k < 1``) are dropped; ValueError if none is
    left or a quantile is not strictly between 0 and 1.
    """
    if not quantiles or any(not 0.0 < q < 1.0 for q in quantiles):
        raise ValueError(f"expected quantiles strictly between 0 and 1, got {quantiles!r}")
    ks = sorted({math.floor(q * (n_reference + 1)) for q in quantiles} - {0})
    if not ks:
        smallest = 1 / (n_reference + 1)
        raise ValueError(f"expected a quantile >= 1 / (n_reference + 1) = {smallest:.3g}")
    return tuple(ks)


@lru_cache(maxsize=32)
def mid_p_table(n_new: int, ks: tuple[int, ...], n_reference: int) -> np.ndarray:
    """``(J, n_new + 1)``: mid-p value of each count ``0..n_new`` beyond each threshold."""
    counts = np.arange(n_new + 1)
    rows = []
    for k in ks:
        pmf = stats.betabinom(n_new, k, n_reference + 1 - k).pmf(counts)
        above = np.concatenate([np.cumsum(pmf[::-1])[::-1][1:], [0.0]])  # P(N > count)
        rows.append(np.minimum(1.0, above + 0.5 * pmf))
    return np.array(rows)


@lru_cache(maxsize=32)
def null_scan(
    n_new: int, ks: tuple[int, ...], n_reference: int, draws: int, seed: int
) -> np.ndarray:
    """``(draws,)`` null draws of the scan statistic (smallest mid-p over ``ks``), sorted."""
    rng = np.random.default_rng(seed)
    shape = np.diff(np.array((0, *ks, n_reference + 1)))
    bins = rng.multinomial(n_new, rng.dirichlet(shape, size=draws))
    beyond = np.cumsum(bins, axis=1)[:, : len(ks)]  # (draws, J): N_k for each threshold
    table = mid_p_table(n_new, ks, n_reference)
    return np.sort(table[np.arange(len(ks)), beyond].min(axis=1))


def scan_test(
    counts: Sequence[int] | np.ndarray,
    n_new: int,
    ks: tuple[int, ...],
    n_reference: int,
    *,
    draws: int = NULL_DRAWS,
    seed: int = 0,
) -> tuple[float, int]:
    """p-value of exceedance ``counts: (J,)`` at ranks ``ks``, and the most significant index.

    The p-value is the null mid-p of the smallest per-threshold mid-p value, estimated from
    ``draws`` Dirichlet-multinomial draws as ``(1 + #below + #equal / 2) / (draws + 1)`` and
    capped by its Bonferroni bound ``J * min``, which keeps small levels resolvable.
    """
    observed = np.asarray(counts, dtype=np.int64)
    if observed.shape != (len(ks),) or observed.min() < 0 or observed.max() > n_new:
        raise ValueError(f"expected {len(ks)} counts in [0, {n_new}], got {observed!r}")
    table = mid_p_table(n_new, ks, n_reference)
    per_threshold = table[np.arange(len(ks)), observed]
    best = int(np.argmin(per_threshold))
    smallest = float(per_threshold[best])
    if len(ks) == 1:
        return smallest, best
    null = null_scan(n_new, ks, n_reference, draws, seed)
    below = np.searchsorted(null, smallest, side="left")
    equal = np.searchsorted(null, smallest, side="right") - below
    estimate = (1.0 + below + 0.5 * equal) / (draws + 1.0)
    return float(min(1.0, estimate, len(ks) * smallest)), best
