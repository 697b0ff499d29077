"""A cosine k-nearest-neighbour graph over stored embeddings, the graph label spreading uses.

:func:`build_knn_graph` reads the vectors chunk by chunk (from an array or a
``models.vector_store.VectorStore``, whose pages it releases as it goes) and finds each
row's ``k`` most cosine-similar other rows:

* ``exact`` (the default up to ``EXACT_MAX_ROWS`` rows): every pair, in blocks, on the
  normalised vectors; similarities are the cosines. Its cost grows as n^2: 50,000 x 1,280
  rows take about 2 minutes on 2 cores, hence the threshold of 20,000.
* ``ivf`` (beyond): normalised vectors projected onto a 256-d PCA basis, split into
  ``max(2 sqrt(n), n / 256)`` spherical k-means lists; each list is searched among its 16
  nearest lists (``models.knn_search``). Similarities are the cosines in the projected space (they
  underestimate the true ones by what the basis drops). Measured on a 2-core CPU
  (``bench/knn_graph.py``, ``docs/benchmarks.md``): 1,000,000 x 1,280 stored rows in 235-251 s
  at a peak RSS of 2.4-2.6 GB; recall@10 against exact full-dimension search 0.65 (1,000 rows)
  on a 1,000-centre Gaussian mixture whose variance is spread over all 1,280 axes (a hard
  case: the 256-d basis keeps about 80 % of it). On 50,000 rows of such a mixture (50
  centres) recall@10 is 0.886, the same with one list (the loss is the projection's, not the
  lists'), and 0.930 with ``dims=512``, which doubles the index's memory.

:func:`extend_knn_graph` adds rows without recomputing the graph: new rows are searched
among all rows, and old rows take a new row into their list when it beats their worst
neighbour. In the exact path the result equals a rebuild. In the approximate one it keeps the
basis and lists fitted at build (rows are placed in the lists, not refitted) and equals what
a search with that basis and those lists would give; :attr:`KnnGraph.needs_rebuild` turns
true once the graph has grown by more than ``REBUILD_GROWTH`` of the rows they were fitted on.

Searches run torch on one thread per worker thread and restore torch's thread count after.
A graph is saved to one ``knn_graph.npz`` in a folder (for instance beside its vector store),
written under a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from models.knn_search import (
    KnnIndex,
    assign,
    canonical,
    fit_ivf,
    list_pairs,
    normalised,
    search_pairs,
)
from models.vector_store import VectorStore

EXACT_MAX_ROWS = 20_000
REBUILD_GROWTH = 0.25
LIST_ROWS = 256  # beyond 65,536 rows, lists of about this many rows: linear cost
GRAPH_FILE = "knn_graph.npz"
_EXACT_BLOCK = 512
_FORMAT = "activelabel.knn_graph"
_FORMAT_VERSION = 1
_OPTIONAL = ("basis", "centroids", "lists", "probes")

Method = Literal["auto", "exact", "ivf"]


class KnnGraphError(ValueError):
    """A saved graph is missing, damaged, or not the graph of the ids it was expected for."""


@dataclass(frozen=True)
class KnnGraph:
    """Each of ``n`` rows' ``k`` nearest other rows by cosine similarity.

    ``ids: (n,)`` int64 image ids in row order; ``neighbours: (n, k)`` int32 row numbers and
    ``similarities: (n, k)`` float32, best first (ties: lower row first), no self-loops.
    ``index`` holds what :func:`extend_knn_graph` needs to search the rows again.
    """

    ids: np.ndarray
    neighbours: np.ndarray
    similarities: np.ndarray
    index: KnnIndex

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def k(self) -> int:
        return self.neighbours.shape[1]

    @property
    def exact(self) -> bool:
        return self.index.exact

    @property
    def needs_rebuild(self) -> bool:
        """Approximate graphs extended past ``1 + REBUILD_GROWTH`` times their fitted rows."""
        return not self.exact and self.n > (1 + REBUILD_GROWTH) * self.index.fitted_rows

    def save(self, directory: str | Path) -> Path:
        """Write the graph to ``directory / GRAPH_FILE`` atomically and return that path."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"ids": self.ids, "neighbours": self.neighbours}
        arrays |= {"similarities": self.similarities, "rows": self.index.rows}
        arrays |= {name: getattr(self.index, name) for name in _OPTIONAL}
        meta = {"format": _FORMAT, "version": _FORMAT_VERSION, "ids_sha256": _digest(self.ids)}
        meta["fitted_rows"] = self.index.fitted_rows
        present = {name: value for name, value in arrays.items() if value is not None}
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, meta=np.array(json.dumps(meta)), **present)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, folder / GRAPH_FILE)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
        return folder / GRAPH_FILE

    @classmethod
    def load(cls, directory: str | Path, *, ids: np.ndarray | None = None) -> KnnGraph:
        """The graph saved in ``directory``; with ``ids: (n,)``, checked to be theirs.

        Raises :class:`KnnGraphError` when the file is missing, damaged, of another format,
        or holds the graph of other ids.
        """
        path = Path(directory) / GRAPH_FILE
        try:
            with open(path, "rb") as stream, np.load(stream, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
            meta = json.loads(str(arrays.pop("meta")))
        except FileNotFoundError as err:
            raise KnnGraphError(f"no kNN graph in {directory}") from err
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            raise KnnGraphError(f"{path} is not a readable kNN graph: {err}") from err
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise KnnGraphError(f"{path} is not a version-{_FORMAT_VERSION} kNN graph")
        graph = _graph_from_arrays(arrays, int(meta["fitted_rows"]), path)
        if _digest(graph.ids) != meta.get("ids_sha256"):
            raise KnnGraphError(f"{path}: its ids do not match the digest saved with them")
        if ids is not None and not np.array_equal(np.asarray(ids, dtype=np.int64), graph.ids):
            raise KnnGraphError(f"{path} holds the graph of other ids than those given")
        return graph


def build_knn_graph(
    vectors: np.ndarray | VectorStore,
    ids: np.ndarray | None = None,
    *,
    k: int = 10,
    seed: int = 0,
    method: Method = "auto",
    dims: int = 256,
    n_lists: int | None = None,
    probes: int = 16,
    chunk_rows: int = 32_768,
) -> KnnGraph:
    """The ``k``-nearest-neighbour graph of ``vectors: (n, dim)`` or a store's rows.

    ``ids: (n,)`` distinct image ids, one per row; for a store they default to its ids.
    ``method`` ``auto`` is ``exact`` up to ``EXACT_MAX_ROWS`` rows, ``ivf`` beyond; ``dims``,
    ``n_lists`` (default ``max(2 sqrt(n), n / LIST_ROWS)``) and ``probes`` set the approximate
    search. The same input and ``seed`` give the same graph on the same machine (the float
    sums may differ on another CPU). ValueError for bad input.
    """
    stored = vectors.ids() if isinstance(vectors, VectorStore) else None
    row_ids = _checked_ids(stored if ids is None else ids)
    if stored is not None and not np.array_equal(stored[: len(row_ids)], row_ids):
        raise ValueError("expected ids equal to the store's ids of the same rows")
    n, dim = _shape(vectors, len(row_ids))
    _check_k(k, n)
    if method not in ("auto", "exact", "ivf"):
        raise ValueError(f"expected method 'auto', 'exact' or 'ivf', got {method!r}")
    if method == "exact" or (method == "auto" and n <= EXACT_MAX_ROWS):
        rows = np.empty((n, dim), dtype=np.float32)
        for start, block in _normalised_chunks(vectors, n, chunk_rows):
            rows[start : start + len(block)] = block
        index = KnnIndex(rows, fitted_rows=n)
    else:
        lists = n_lists if n_lists is not None else round(max(2 * math.sqrt(n), n / LIST_ROWS))
        if not 1 <= lists <= n or dims < 1 or probes < 1:
            raise ValueError(f"expected 1 <= n_lists <= {n}, dims >= 1, probes >= 1")
        chunks = functools.partial(_normalised_chunks, vectors, n, chunk_rows)
        index = fit_ivf(chunks, n, dim, k=k, seed=seed, dims=dims, n_lists=lists, probes=probes)
    neighbours, similarities = _search(index, np.arange(n), np.arange(n), k)
    return KnnGraph(row_ids, neighbours, similarities, index)


def extend_knn_graph(graph: KnnGraph, new_vectors: np.ndarray, new_ids: np.ndarray) -> KnnGraph:
    """``graph`` with rows ``new_vectors: (m, dim)`` for ``new_ids: (m,)`` appended.

    New rows get their neighbours among all rows; old rows whose lists a new row enters are
    updated. ValueError for bad input or ids already in the graph.
    """
    fresh_ids = _checked_ids(new_ids)
    _shape(new_vectors, len(fresh_ids))
    if np.isin(fresh_ids, graph.ids).any():
        raise ValueError("expected new_ids that are not in the graph already")
    if len(fresh_ids) == 0:
        return graph
    basis, width = graph.index.basis, graph.index.rows.shape[1]
    dim = width if basis is None else basis.shape[0]
    if np.shape(new_vectors)[1] != dim:
        raise ValueError(f"expected {dim}-d vectors like the graph's, got {np.shape(new_vectors)}")
    new_rows = graph.index.project(next(_normalised_chunks(new_vectors, len(fresh_ids), None))[1])
    index = dataclasses.replace(graph.index, rows=np.concatenate([graph.index.rows, new_rows]))
    if not index.exact:
        lists = np.concatenate([graph.index.lists, assign(new_rows, index.centroids)])
        index = dataclasses.replace(index, lists=lists)
    old, fresh = np.arange(graph.n), np.arange(graph.n, graph.n + len(fresh_ids))
    neighbours = np.concatenate([graph.neighbours, np.empty((len(fresh), graph.k), np.int32)])
    similarities = np.concatenate([graph.similarities, np.empty((len(fresh), graph.k), "f4")])
    neighbours[fresh], similarities[fresh] = _search(
        index, fresh, np.arange(len(index.rows)), graph.k
    )
    entering, scores = _search(index, old, fresh, graph.k)
    merged = canonical(
        np.concatenate([graph.neighbours, entering], axis=1),
        np.concatenate([graph.similarities, scores], axis=1),
        graph.k,
    )
    neighbours[old], similarities[old] = merged
    return KnnGraph(np.concatenate([graph.ids, fresh_ids]), neighbours, similarities, index)


def _search(
    index: KnnIndex, queries: np.ndarray, pool: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours ``(q, k)`` int32 and similarities of ``queries`` among ``pool`` (row numbers)."""
    neighbours = np.full((len(queries), k), -1, dtype=np.int32)
    similarities = np.full((len(queries), k), -np.inf, dtype=np.float32)
    if index.exact:
        pairs = (
            (queries[i : i + _EXACT_BLOCK], pool) for i in range(0, len(queries), _EXACT_BLOCK)
        )
    else:
        pairs = list_pairs(index, queries, pool)
    for rows, found, scores in search_pairs(index.rows, pairs, k):
        at = np.searchsorted(queries, rows)
        neighbours[at], similarities[at] = found, scores
    return neighbours, similarities


def _normalised_chunks(
    vectors: np.ndarray | VectorStore, n: int, chunk_rows: int | None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, normalised float32 copy)`` of the first ``n`` rows, a chunk at a time."""
    step = chunk_rows or max(n, 1)
    if isinstance(vectors, VectorStore):
        stored = itertools.takewhile(lambda chunk: chunk.start < n, vectors.chunks(step))
        blocks = ((chunk.start, chunk.vectors) for chunk in stored)
    else:
        blocks = ((start, vectors[start : start + step]) for start in range(0, n, step))
    for start, block in blocks:
        block = block[: n - start]
        if not np.all(np.isfinite(block)):
            raise ValueError(f"expected finite vectors, got NaN or infinity in rows {start}+")
        yield start, normalised(block)


def _checked_ids(ids: np.ndarray | None) -> np.ndarray:
    if ids is None:
        raise ValueError("expected ids: (n,) for the rows of an array")
    array = np.asarray(ids)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"expected integer ids of shape (n,), got {array.dtype} {array.shape}")
    if len(np.unique(array)) != len(array):
        raise ValueError("expected distinct ids, one per row")
    return array.astype(np.int64)


def _shape(vectors: np.ndarray | VectorStore, n_ids: int) -> tuple[int, int]:
    if isinstance(vectors, VectorStore):
        n, dim = len(vectors), vectors.dim
    else:
        if np.ndim(vectors) != 2:
            raise ValueError(f"expected vectors of shape (n, dim), got {np.shape(vectors)}")
        n, dim = np.shape(vectors)
    if n != n_ids and not (isinstance(vectors, VectorStore) and n > n_ids):
        raise ValueError(f"expected one id per row: {n} rows, {n_ids} ids")
    return n_ids, dim


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k < n:
        raise ValueError(f"expected 1 <= k < n = {n} (a row is not its own neighbour), got {k}")


def _graph_from_arrays(arrays: dict[str, np.ndarray], fitted_rows: int, path: Path) -> KnnGraph:
    try:
        index = KnnIndex(arrays["rows"], *(arrays.get(name) for name in _OPTIONAL), fitted_rows)
        graph = KnnGraph(arrays["ids"], arrays["neighbours"], arrays["similarities"], index)
    except KeyError as err:
        raise KnnGraphError(f"{path} lacks the array {err}") from err
    n = graph.n
    shapes_fit = graph.neighbours.shape == graph.similarities.shape and len(index.rows) == n
    if not shapes_fit or graph.neighbours.shape[0] != n or graph.ids.dtype != np.int64:
        raise KnnGraphError(f"{path} holds arrays of mismatched shapes")
    if n and (graph.neighbours.min() < 0 or graph.neighbours.max() >= n):
        raise KnnGraphError(f"{path} holds neighbours outside its {n} rows")
    return graph


def _digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs a folder
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
