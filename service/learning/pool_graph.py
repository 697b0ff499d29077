"""The pool's kNN graph for the semi-supervised head, kept beside the backbone's vector store.

The graph covers every stored row of the store, in row order. The store is append-only, so
a graph saved for its first ``n`` rows stays right: when rows are added it is extended with
the new ones only (`models.knn_graph.extend_knn_graph`), and rebuilt only once an approximate
graph has outgrown the lists it was fitted on. A file lock keeps two processes from updating
it at once; the normalised affinity built from it (and the pool's projected rows) is kept
per process for its row count, so a retrain on an unchanged pool reads nothing from disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.knn_graph import KnnGraph, KnnGraphError, build_knn_graph, extend_knn_graph
from models.label_spreading import affinity_matrix
from models.semi_supervised import BASIS_SAMPLE, SemiSupervisedSettings, pool_projection
from models.vector_store import VectorStore

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_CACHE: dict[tuple[Path, int, float], PoolAffinity] = {}


@dataclass(frozen=True)
class PoolAffinity:
    """``affinity (n, n)`` over the store's first ``n`` rows, whose ids are ``ids (n,)``.

    ``projected (n, d)`` float32 holds the same rows as ``(x - mean) @ basis`` when
    ``projection = (mean, basis)`` is set (wide embeddings), so each training reads narrow
    rows; None when the embeddings are narrow enough to train on as they are.
    """

    ids: np.ndarray
    affinity: torch.Tensor
    built: int  # rows searched by this call (0: the saved graph was current)
    projection: tuple[np.ndarray, np.ndarray] | None = None
    projected: np.ndarray | None = None


def graph_dir(store: VectorStore, k: int) -> Path:
    return store.directory / f"knn-k{k}"


def pool_affinity(store: VectorStore, settings: SemiSupervisedSettings) -> PoolAffinity:
    """The normalised affinity of the store's current rows, updating the saved graph first."""
    store.refresh()
    folder = graph_dir(store, settings.k)
    folder.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        # The store only grows: the same row count is the same rows, and the same graph.
        found = _CACHE.get((folder, len(store), settings.power))
        if found is not None:
            return found
        with _file_lock(folder):
            graph, built = _current_graph(store, folder, settings.k)
        affinity = affinity_matrix(graph.neighbours, graph.similarities, power=settings.power)
        projection, projected = _projected(store, graph.n)
        found = PoolAffinity(graph.ids, affinity, 0, projection, projected)
        _CACHE.clear()  # one pool per process: keep the latest only
        _CACHE[(folder, graph.n, settings.power)] = found
    return dataclasses.replace(found, built=built)


def _projected(
    store: VectorStore, n: int
) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """The pool's projection from a sample of its first ``n`` rows, and those rows projected."""
    ids = store.ids()[:n]
    projection = pool_projection(store.get(ids[:: -(-n // BASIS_SAMPLE)]))
    if projection is None:
        return None, None
    mean, basis = (part.astype(np.float32) for part in projection)
    out = np.empty((n, basis.shape[1]), dtype=np.float32)
    for chunk in store.chunks():
        if chunk.start >= n:
            break
        rows = chunk.vectors[: n - chunk.start]
        out[chunk.start : chunk.start + len(rows)] = (rows - mean) @ basis
    return projection, out


def _current_graph(store: VectorStore, folder: Path, k: int) -> tuple[KnnGraph, int]:
    ids = store.ids()
    try:
        graph: KnnGraph | None = KnnGraph.load(folder)
    except KnnGraphError as err:
        if (folder / "knn_graph.npz").exists():
            log.warning("rebuilding the pool's kNN graph: %s", err)
        graph = None
    if graph is not None and (
        graph.n > len(ids) or not np.array_equal(graph.ids, ids[: graph.n]) or graph.needs_rebuild
    ):
        graph = None
    if graph is None:
        graph = build_knn_graph(store, ids, k=k, seed=0)
        graph.save(folder)
        return graph, graph.n
    if graph.n == len(ids):
        return graph, 0
    fresh = ids[graph.n :]
    graph = extend_knn_graph(graph, store.get(fresh), fresh)
    if graph.needs_rebuild:  # an approximate graph outgrew the lists it was fitted on
        graph = build_knn_graph(store, ids, k=k, seed=0)
    graph.save(folder)
    return graph, len(fresh)


@contextlib.contextmanager
def _file_lock(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
