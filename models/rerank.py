"""Re-ranking a pool after a head retrain, from stored embeddings, without the backbone.

The store's rows are streamed through the linear head a chunk at a time; each chunk's scores
are cut to its best ``k`` with a partial sort and merged into the running best ``k``. Memory
holds one chunk and ``2k`` candidates whatever the pool's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.head import TrainedHead
from models.vector_store import VectorStore

ScoreFunction = Callable[[np.ndarray], np.ndarray]
DEFAULT_CHUNK_ROWS = 32768


@dataclass(frozen=True)
class Reranked:
    """The ``k`` best-scored images, best first.

    ``ids: (k,)`` int64 image ids, ``rows: (k,)`` their rows in the store, ``scores: (k,)``
    float64 and ``probabilities: (k, n_classes)`` float32. ``n_scored`` counts the images
    scored (the store's rows less the excluded ones); ``seconds`` is the wall time.
    """

    ids: np.ndarray
    rows: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    n_scored: int
    seconds: float


def rerank(
    store: VectorStore,
    head: TrainedHead,
    score: ScoreFunction,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Reranked:
    """The ``k`` stored images that ``score`` rates highest under ``head``'s probabilities.

    ``score`` maps probabilities ``(n, n_classes)`` to scores ``(n,)`` (higher = more worth
    labeling), e.g. ``models.uncertainty.entropy``. Ids in ``exclude`` (e.g. the labeled
    images) are skipped. Equal scores keep the lower store row first. Raises ValueError when
    the head was trained on another backbone's embeddings, for ``k < 1``, or when ``score``
    does not return one finite score per image.
    """
    if head.backbone_id != store.backbone_id or head.embedding_dim != store.dim:
        raise ValueError(
            f"expected a head for {store.backbone_id!r} ({store.dim}-d), "
            f"got one for {head.backbone_id!r} ({head.embedding_dim}-d)"
        )
    if k < 1:
        raise ValueError(f"expected k >= 1, got {k}")
    start = time.perf_counter()
    weight, bias = head_arrays(head)
    skip = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else None
    best = _Candidates.empty(len(bias))
    n_scored = 0
    for chunk in store.chunks(chunk_rows):
        keep = _not_in(chunk.ids, skip)
        rows = chunk.start + np.flatnonzero(keep)
        vectors = chunk.vectors if keep.all() else chunk.vectors[keep]
        probabilities = softmax_float32(vectors, weight, bias)
        scores = _checked_scores(score(probabilities), len(rows))
        chosen = top_k_indices(scores, k)
        found = _Candidates(rows[chosen], scores[chosen], probabilities[chosen])
        best = best.merged(found, k)
        n_scored += len(rows)
    order = np.lexsort((best.rows, -best.scores))
    ids = store.ids()[best.rows[order]] if len(order) else np.zeros(0, dtype=np.int64)
    seconds = time.perf_counter() - start
    return Reranked(
        ids, best.rows[order], best.scores[order], best.probabilities[order], n_scored, seconds
    )


def head_arrays(head: TrainedHead) -> tuple[np.ndarray, np.ndarray]:
    """The head's ``weight.T: (D, n_classes)`` and ``bias: (n_classes,)`` as float32 arrays.

    A calibrated head's temperature is folded in, so the softmax of these logits is the
    head's ``predict_proba``.
    """
    scale = 1.0 / float(getattr(head, "temperature", 1.0))
    weight = head.state["weight"].detach().cpu().numpy().astype(np.float64) * scale
    bias = head.state["bias"].detach().cpu().numpy().astype(np.float64) * scale
    return np.ascontiguousarray(weight.T, dtype=np.float32), bias.astype(np.float32)


def softmax_float32(vectors: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Softmax of ``vectors: (n, D) @ weight_t: (D, C) + bias: (C,)``; ``(n, C)`` float32.

    float32 throughout (the head's own ``predict_proba`` works in float64): on a chunk of the
    store this is memory-bound, and the probabilities agree to about 1e-6.
    """
    logits = vectors @ weight_t
    logits += bias
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest ``scores: (n,)``, ascending; ties keep lower positions."""
    n = len(scores)
    if n <= k:
        return np.arange(n)
    threshold = np.partition(scores, n - k)[n - k]
    above = scores > threshold
    at = np.flatnonzero(scores == threshold)[: k - int(above.sum())]
    return np.sort(np.concatenate([np.flatnonzero(above), at]))


@dataclass(frozen=True)
class _Candidates:
    """The best rows so far, in ascending row order."""

    rows: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def empty(cls, n_classes: int) -> _Candidates:
        return cls(
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
            np.zeros((0, n_classes), dtype=np.float32),
        )

    def merged(self, other: _Candidates, k: int) -> _Candidates:
        """The best ``k`` of both; ``other``'s rows all come after this one's."""
        rows = np.concatenate([self.rows, other.rows])
        scores = np.concatenate([self.scores, other.scores])
        chosen = top_k_indices(scores, k)
        probabilities = np.concatenate([self.probabilities, other.probabilities])
        return _Candidates(rows[chosen], scores[chosen], probabilities[chosen])


def _not_in(ids: np.ndarray, sorted_skip: np.ndarray | None) -> np.ndarray:
    """``(n,)`` bool: which of ``ids`` are absent from the sorted ``sorted_skip``."""
    if sorted_skip is None or len(sorted_skip) == 0:
        return np.ones(len(ids), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_skip, ids), len(sorted_skip) - 1)
    return sorted_skip[position] != ids


def _checked_scores(scores: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (n,) or not np.all(np.isfinite(values)):
        raise ValueError(f"expected the score function to return ({n},) finite scores")
    return values
