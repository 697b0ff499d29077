"""Batch-aware strategies that spread a batch over the pool: k-center greedy, BADGE, TypiClust."""

from __future__ import annotations

import numpy as np

from models.selection.geometry import kmeans, min_squared_distances, squared_distances, typicality
from models.selection.inputs import SelectionInputs, candidate_rows

# TypiClust: at most this many clusters, clusters smaller than this are skipped while
# larger ones are left, and typicality is computed on at most this many points of a cluster.
MAX_CLUSTERS = 500
MIN_CLUSTER_SIZE = 5
_TYPICALITY_SAMPLE = 2000
# Lloyd iterations for TypiClust's clustering: coverage needs rough clusters, not converged ones.
KMEANS_ITERATIONS = 10
# k-center greedy covers at most this many pool images, a seeded random sample of a bigger pool.
KCENTER_MAX_CANDIDATES = 10_000


def select_kcenter(inputs: SelectionInputs) -> np.ndarray:
    """Core-set greedy: repeatedly take the pool point farthest from everything chosen.

    "Chosen" starts as the labeled embeddings; with none, the first pick is random.
    The batch comes in pick order, so the first images cover the largest gaps. A pool larger
    than ``KCENTER_MAX_CANDIDATES`` is covered on a seeded random sample of that size: the
    distances to the labeled set cost pool size x labeled size each round.
    """
    rows = candidate_rows(inputs.n_pool, KCENTER_MAX_CANDIDATES, inputs.seed)
    x = inputs.embeddings[rows]
    closest = min_squared_distances(x, inputs.labeled_embeddings)
    rng = np.random.default_rng(inputs.seed)
    picks: list[int] = []
    for _ in range(min(inputs.batch_size, rows.size)):
        if np.isinf(closest).all():
            pick = int(rng.integers(rows.size))
        else:
            pick = int(np.argmax(closest))
        picks.append(pick)
        closest = np.minimum(closest, squared_distances(x, x[pick][None, :])[:, 0])
        closest[picks] = -1.0
    return rows[np.asarray(picks, dtype=np.int64)]


def select_badge(inputs: SelectionInputs) -> np.ndarray:
    """BADGE: k-means++ seeding over gradient embeddings of the head's last layer.

    The gradient of the cross-entropy with respect to the linear head's weights, at the
    predicted label ``y^``, is ``g_i = (p_i - onehot(y^_i)) outer [x_i - mean, 1]``; its size
    measures uncertainty and its direction the image's content. ``g`` is never formed:
    ``g_i . g_j = (a_i . a_j)(x_i . x_j + 1)``. The first pick has the largest gradient.
    """
    a = inputs.probs.copy()
    a[np.arange(inputs.n_pool), a.argmax(axis=1)] -= 1.0
    x = inputs.embeddings - inputs.embeddings.mean(axis=0)
    norms = (a * a).sum(axis=1) * ((x * x).sum(axis=1) + 1.0)
    rng = np.random.default_rng(inputs.seed)
    picks = [int(np.argmax(norms))]
    closest = _gradient_distances(a, x, norms, picks[0])
    for _ in range(1, inputs.batch_size):
        closest[picks] = 0.0
        total = closest.sum()
        if total <= 1e-12:
            rest = np.setdiff1d(np.arange(inputs.n_pool), picks)
            picks.extend(int(i) for i in rng.permutation(rest)[: inputs.batch_size - len(picks)])
            break
        pick = int(rng.choice(inputs.n_pool, p=closest / total))
        picks.append(pick)
        closest = np.minimum(closest, _gradient_distances(a, x, norms, pick))
    return np.asarray(picks, dtype=np.int64)


def _gradient_distances(a: np.ndarray, x: np.ndarray, norms: np.ndarray, j: int) -> np.ndarray:
    """Squared distances ``(n,)`` between every gradient embedding and that of image ``j``."""
    dots = (a @ a[j]) * (x @ x[j] + 1.0)
    return np.maximum(norms + norms[j] - 2.0 * dots, 0.0)


def select_typiclust(inputs: SelectionInputs) -> np.ndarray:
    """TypiClust: the most typical image of each of the largest clusters without labels.

    Pool and labeled embeddings are clustered together by k-means into ``m + k`` clusters
    (at most 500). Clusters are visited by fewest labeled (or already chosen) members, then
    largest size; from each, the unlabeled point with the highest typicality (inverse mean
    distance to its 20 nearest neighbours in the cluster) is taken. Needs no model, so it
    gives a first batch for a pool with no labels at all.
    """
    m = inputs.labeled_embeddings.shape[0]
    both = np.concatenate([inputs.embeddings, inputs.labeled_embeddings])
    n_clusters = min(m + inputs.batch_size, MAX_CLUSTERS, both.shape[0])
    clusters, _ = kmeans(both, n_clusters, seed=inputs.seed, iterations=KMEANS_ITERATIONS)
    pool_clusters = clusters[: inputs.n_pool]
    covered = np.bincount(clusters[inputs.n_pool :], minlength=n_clusters)
    sizes = np.bincount(pool_clusters, minlength=n_clusters)
    rng = np.random.default_rng(inputs.seed)
    taken = np.zeros(inputs.n_pool, dtype=bool)
    picks: list[int] = []
    while len(picks) < inputs.batch_size:
        available = sizes - np.bincount(pool_clusters[taken], minlength=n_clusters)
        big = available >= min(MIN_CLUSTER_SIZE, available.max())
        candidates = np.flatnonzero(big & (available > 0))
        # Fewest labeled members first, then the largest cluster.
        best = candidates[np.lexsort((-sizes[candidates], covered[candidates]))[0]]
        pick = _most_typical(
            inputs.embeddings, np.flatnonzero((pool_clusters == best) & ~taken), rng
        )
        picks.append(pick)
        taken[pick] = True
        covered[best] += 1
    return np.asarray(picks, dtype=np.int64)


def _most_typical(x: np.ndarray, members: np.ndarray, rng: np.random.Generator) -> int:
    if members.size > _TYPICALITY_SAMPLE:
        members = rng.choice(members, _TYPICALITY_SAMPLE, replace=False)
    return int(members[np.argmax(typicality(x[members]))])
