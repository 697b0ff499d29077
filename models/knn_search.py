"""The searches behind ``models.knn_graph``: exact blocks and inverted lists over a PCA basis.

Rows are L2-normalised first. The exact search compares every row with every other, a block
of rows per matrix product. The approximate one projects the normalised rows onto the top
``dims`` eigenvectors of their (uncentred) second-moment matrix, fitted on a seeded sample, so
inner products of projected rows estimate the cosines of the originals; splits the projected
rows into lists by spherical k-means; and searches all rows of one list together, with one
matrix product, among the rows of the ``probes`` lists whose centroids are nearest to that
list's own. The work is a few thousand large GEMMs, not a million small scans.

Every result is put in one canonical order: similarity descending, then row number ascending.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

BASIS_SAMPLE = 65_536
_BLOCK_ELEMENTS = 1 << 24  # similarities held at once in one block (64 MB of float32)
_KMEANS_ITERATIONS = 8
_KMEANS_SAMPLE_PER_LIST = 32


@dataclass(frozen=True)
class KnnIndex:
    """The rows a graph searches, in the space they are compared in.

    ``rows: (n, d)`` float32, normalised (and projected when ``basis: (dim, d)`` is set).
    Approximate indexes also hold ``centroids: (n_lists, d)``, ``lists: (n,)`` int32 (the list
    of each row) and ``probes: (n_lists, width)`` int32 (the lists each list searches, padded
    with -1). ``fitted_rows`` is how many rows the basis and lists were fitted on.
    """

    rows: np.ndarray
    basis: np.ndarray | None = None
    centroids: np.ndarray | None = None
    lists: np.ndarray | None = None
    probes: np.ndarray | None = None
    fitted_rows: int = 0

    @property
    def exact(self) -> bool:
        return self.centroids is None

    def project(self, normalised: np.ndarray) -> np.ndarray:
        """Normalised vectors ``(m, dim)`` in this index's space, ``(m, d)`` float32."""
        if self.basis is None:
            return np.ascontiguousarray(normalised, dtype=np.float32)
        return normalised @ self.basis


def normalised(vectors: np.ndarray) -> np.ndarray:
    """``vectors: (m, dim)`` scaled to unit length (a float32 copy); ValueError for zero rows."""
    matrix = np.array(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("expected non-zero vectors: the cosine of a zero vector is undefined")
    matrix /= norms
    return matrix


def fit_basis(sample: np.ndarray, dims: int) -> np.ndarray:
    """Top ``dims`` eigenvectors ``(dim, dims)`` float32 of ``sample: (m, dim)``'s second moment."""
    moment = torch.zeros((sample.shape[1],) * 2, dtype=torch.float64)
    for start in range(0, len(sample), 8192):
        block = torch.from_numpy(sample[start : start + 8192])
        moment += (block.T @ block).double()  # float32 within a block, float64 across
    with one_torch_thread():  # LAPACK's threads here slow it down many times over
        _, vectors = torch.linalg.eigh(moment)  # ascending eigenvalues
    basis = vectors.numpy()[:, ::-1][:, :dims]
    basis *= np.where(basis[np.abs(basis).argmax(axis=0), range(dims)] < 0, -1.0, 1.0)  # fix signs
    return np.ascontiguousarray(basis, dtype=np.float32)


def fit_ivf(
    chunks: Callable[[], Iterable[tuple[int, np.ndarray]]],
    n: int,
    dim: int,
    *,
    k: int,
    seed: int,
    dims: int,
    n_lists: int,
    probes: int,
) -> KnnIndex:
    """The approximate index of ``n`` rows given, normalised, by two passes of ``chunks()``.

    ``chunks()`` yields ``(first row, block: (m, dim))``. Pass 1 keeps a seeded sample of
    ``BASIS_SAMPLE`` rows and fits the basis on it; pass 2 projects every row; then the lists.
    """
    picked = np.sort(np.random.default_rng(seed).choice(n, min(n, BASIS_SAMPLE), replace=False))
    basis = None
    if dim > dims:
        sample = np.empty((len(picked), dim), dtype=np.float32)
        for start, block in chunks():
            inside = picked[(picked >= start) & (picked < start + len(block))]
            sample[np.searchsorted(picked, inside)] = block[inside - start]
        basis = fit_basis(sample, dims)
        del sample
    rows = np.empty((n, min(dim, dims)), dtype=np.float32)
    for start, block in chunks():
        rows[start : start + len(block)] = block if basis is None else block @ basis
    return dataclasses.replace(fit_lists(rows, n_lists, probes, k, seed + 1), basis=basis)


def fit_lists(rows: np.ndarray, n_lists: int, probes: int, k: int, seed: int) -> KnnIndex:
    """Spherical k-means lists over ``rows: (n, d)``, each list's probes, every row's list."""
    rng = np.random.default_rng(seed)
    n = len(rows)
    sample = np.sort(rng.choice(n, size=min(n, _KMEANS_SAMPLE_PER_LIST * n_lists), replace=False))
    points = rows[sample]
    centroids = points[np.sort(rng.choice(len(points), size=n_lists, replace=False))].copy()
    for _ in range(_KMEANS_ITERATIONS):
        assigned = assign(points, centroids)
        order = np.argsort(assigned, kind="stable")
        present, starts = np.unique(assigned[order], return_index=True)
        sums = np.add.reduceat(points[order].astype(np.float64), starts, axis=0)
        centroids[present] = sums / np.linalg.norm(sums, axis=1, keepdims=True)  # empty: kept
    lists = assign(rows, centroids)
    return KnnIndex(rows, None, centroids, lists, _probes(centroids, lists, probes, k), n)


def assign(rows: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid (largest inner product) of each of ``rows: (n, d)``; ``(n,)`` int32."""
    out = np.empty(len(rows), dtype=np.int32)
    cents = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    step = max(1, _BLOCK_ELEMENTS // len(centroids))
    for start in range(0, len(rows), step):
        block = torch.from_numpy(np.ascontiguousarray(rows[start : start + step]))
        out[start : start + step] = (block @ cents.T).argmax(dim=1).numpy()
    return out


def _probes(centroids: np.ndarray, lists: np.ndarray, probes: int, k: int) -> np.ndarray:
    """Each list's nearest ``probes`` lists (itself first), more where they hold <= k rows."""
    n_lists = len(centroids)
    similar = centroids @ centroids.T
    np.fill_diagonal(similar, np.inf)
    order = np.argsort(-similar, axis=1, kind="stable").astype(np.int32)
    held = np.cumsum(np.bincount(lists, minlength=n_lists)[order], axis=1)
    widths = np.maximum(min(probes, n_lists), (held <= k).sum(axis=1) + 1).clip(max=n_lists)
    padded = np.full((n_lists, widths.max()), -1, dtype=np.int32)
    for row, width in enumerate(widths):
        padded[row, :width] = order[row, :width]
    return padded


def members(lists: np.ndarray, n_lists: int) -> list[np.ndarray]:
    """Sorted positions in ``lists: (m,)`` (list numbers) of each list's entries."""
    order = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[order], np.arange(n_lists + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(n_lists)]


def list_pairs(
    index: KnnIndex, queries: np.ndarray, pool: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(query rows, candidate rows)`` to search, covering each row of ``queries``.

    A query's candidates are the rows of ``pool`` in its list's probes. ``queries`` and
    ``pool`` are sorted row numbers, and so are both arrays of each pair.
    """
    assert index.lists is not None and index.probes is not None
    n_lists = len(index.probes)
    held = [pool[p] for p in members(index.lists[pool], n_lists)]
    for c, positions in enumerate(members(index.lists[queries], n_lists)):
        probed = index.probes[c][index.probes[c] >= 0]
        candidates = np.sort(np.concatenate([held[p] for p in probed]))
        if len(positions) and len(candidates):
            yield queries[positions], candidates


def search_pairs(
    rows: np.ndarray, pairs: Iterable[tuple[np.ndarray, np.ndarray]], k: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(queries, neighbours, similarities)`` of :func:`top_k` for each ``(queries, candidates)``.

    Pairs are searched by one worker thread per torch thread, each running torch on one thread:
    many mid-sized products in parallel waste less time in synchronisation than each product
    split over all threads. torch's thread count is restored afterwards.
    """
    workers = torch.get_num_threads()
    with one_torch_thread(), ThreadPoolExecutor(workers) as pool:
        pending: deque[tuple[np.ndarray, Future]] = deque()
        for queries, candidates in pairs:
            pending.append((queries, pool.submit(top_k, rows, queries, candidates, k)))
            if len(pending) > 2 * workers:  # bounded: a few pairs in flight
                queries, done = pending.popleft()
                yield queries, *done.result()
        for queries, done in pending:
            yield queries, *done.result()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block; its thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def top_k(
    rows: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of sorted row numbers ``candidates`` for each of ``queries``, self excluded.

    Returns neighbours ``(q, k)`` int64 and similarities ``(q, k)`` float32, canonical order;
    rows short of candidates are padded with -1 and -inf.
    """
    everything = len(candidates) == len(rows)  # sorted distinct row numbers: all of them
    targets = torch.from_numpy(np.ascontiguousarray(rows if everything else rows[candidates]))
    step = max(1, _BLOCK_ELEMENTS // max(1, len(candidates)))
    found, sims = [], []
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        scores = torch.from_numpy(np.ascontiguousarray(rows[block])) @ targets.T
        position = np.searchsorted(candidates, block).clip(max=len(candidates) - 1)
        own = np.nonzero(candidates[position] == block)[0]
        scores[own, position[own]] = -torch.inf  # no self-loops
        values, where = torch.topk(scores, min(k, len(candidates)), dim=1)
        found.append(candidates[where.numpy()])
        sims.append(values.numpy())
    return canonical(np.concatenate(found), np.concatenate(sims), k)


def canonical(neighbours: np.ndarray, similarities: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The ``k`` best of each row of ``(q, m)`` arrays: similarity descending, then row number.

    Entries at -inf (self, padding) become -1 neighbours.
    """
    if neighbours.shape[1] < k:
        pad = ((0, 0), (0, k - neighbours.shape[1]))
        neighbours = np.pad(neighbours, pad, constant_values=-1)
        similarities = np.pad(similarities, pad, constant_values=-np.inf)
    order = np.lexsort((neighbours, -similarities), axis=1)[:, :k]
    best = np.take_along_axis(neighbours, order, axis=1).astype(np.int64)
    values = np.take_along_axis(similarities, order, axis=1).astype(np.float32)
    best[np.isneginf(values)] = -1
    return best, values
