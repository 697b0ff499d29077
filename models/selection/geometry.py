"""Distances and k-means in numpy, sized for pools of tens of thousands of points."""

from __future__ import annotations

import numpy as np

# Rows per block when a full (n, m) distance matrix would be too large.
_BLOCK = 4096
# k-means fits its centres on at most this many points, then assigns all of them.
_FIT_SAMPLE = 20_000


def squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(n, m)`` between ``x: (n, D)`` and ``y: (m, D)``."""
    cross = x @ y.T
    out = (x * x).sum(axis=1)[:, None] - 2.0 * cross + (y * y).sum(axis=1)[None, :]
    return np.maximum(out, 0.0)


def min_squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """For each row of ``x: (n, D)``, the squared distance to its nearest row of ``y: (m, D)``.

    ``inf`` everywhere when ``m == 0``. Computed in blocks, so memory stays ``O(block * m)``.
    """
    out = np.full(x.shape[0], np.inf)
    if y.shape[0] == 0:
        return out
    for start in range(0, x.shape[0], _BLOCK):
        block = squared_distances(x[start : start + _BLOCK], y)
        out[start : start + _BLOCK] = block.min(axis=1)
    return out


def nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index ``(n,)`` of the nearest of ``centres: (k, D)`` for each row of ``x: (n, D)``."""
    out = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], _BLOCK):
        out[start : start + _BLOCK] = squared_distances(x[start : start + _BLOCK], centres).argmin(
            axis=1
        )
    return out


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct row indices of ``x: (n, D)`` seeded by D^2 sampling (k-means++)."""
    n = x.shape[0]
    k = min(k, n)
    chosen = [int(rng.integers(n))]
    closest = squared_distances(x, x[chosen[0]][None, :])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # every point coincides with a chosen one: take unchosen ones
            rest = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(int(i) for i in rng.permutation(rest)[: k - len(chosen)])
            break
        pick = int(rng.choice(n, p=closest / total))
        chosen.append(pick)
        closest = np.minimum(closest, squared_distances(x, x[pick][None, :])[:, 0])
    return np.asarray(chosen, dtype=np.int64)


def kmeans(
    x: np.ndarray, k: int, *, seed: int, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on ``x: (n, D)``: cluster of each row ``(n,)`` and centres ``(k, D)``.

    Seeded with k-means++; centres are fitted on a random sample of at most 20,000 rows, then
    every row is assigned. A cluster that empties keeps its previous centre.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected points of shape (n >= 1, D), got {x.shape}")
    if k < 1:
        raise ValueError(f"expected k >= 1, got {k}")
    rng = np.random.default_rng(seed)
    sample = x if x.shape[0] <= _FIT_SAMPLE else x[rng.choice(x.shape[0], _FIT_SAMPLE, False)]
    centres = sample[kmeans_plus_plus(sample, k, rng)].copy()
    assignment = np.full(sample.shape[0], -1)
    for _ in range(iterations):
        updated = nearest(sample, centres)
        if np.array_equal(updated, assignment):
            break
        assignment = updated
        sums = np.zeros_like(centres)
        np.add.at(sums, assignment, sample)
        counts = np.bincount(assignment, minlength=len(centres))
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return nearest(x, centres), centres


def typicality(x: np.ndarray, *, neighbours: int = 20) -> np.ndarray:
    """``1 / mean distance to the nearest neighbours`` of each row of ``x: (n, D)`` among ``x``.

    Higher means the point sits in a denser region. A single point gets typicality ``inf``.
    """
    n = x.shape[0]
    if n == 1:
        return np.array([np.inf])
    count = min(neighbours, n - 1)
    dist = np.sqrt(squared_distances(x, x))
    np.fill_diagonal(dist, np.inf)
    mean = np.partition(dist, count - 1, axis=1)[:, :count].mean(axis=1)
    with np.errstate(divide="ignore"):
        return 1.0 / mean
