"""What a round's strategy receives: `SelectionInputs` built from the embedding store.

The pool's vectors are read from the backbone's memory-mapped store and scored by the
active head (never the backbone); a pool above `MAX_CANDIDATES` is cut first as
`service/learning/strategies.py` states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.head import TrainedHead
from models.rerank import rerank
from models.selection import SelectionInputs
from models.vector_store import VectorStore
from service.core.orm import Image
from service.learning.strategies import MAX_CANDIDATES, display_score, samples_uniformly


@dataclass(frozen=True)
class RoundInputs:
    """``inputs`` for the strategy; ``image_ids: (n,)`` the pool image behind each row.

    ``pool_size`` counts every stored pool image, ``n`` only those the strategy sees.
    """

    image_ids: np.ndarray
    inputs: SelectionInputs
    pool_size: int


def pool_candidates(
    store: VectorStore,
    head: TrainedHead,
    strategy: str,
    pool_ids: np.ndarray,
    *,
    seed: int,
    limit: int = MAX_CANDIDATES,
) -> np.ndarray:
    """The pool ids ``(m,)`` (ascending) the strategy sees: all, or ``limit`` of them."""
    pool_ids = np.unique(np.asarray(pool_ids, dtype=np.int64))
    if len(pool_ids) <= limit:
        return pool_ids
    if samples_uniformly(strategy):
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(pool_ids, size=limit, replace=False))
    outside = np.setdiff1d(store.ids(), pool_ids, assume_unique=True)
    best = rerank(store, head, display_score(strategy), limit, exclude=outside)
    return np.sort(best.ids)


def round_inputs(
    store: VectorStore,
    head: TrainedHead,
    strategy: str,
    pool: Sequence[Image],
    labeled: Sequence[Image],
    labels: np.ndarray,
    *,
    k: int,
    seed: int,
) -> RoundInputs | None:
    """Inputs for choosing ``k`` of ``pool``; None when no pool image is stored.

    ``labels: (len(labeled),)`` are the class indices of ``labeled``; labeled images
    without a stored embedding are left out.
    """
    pool_ids = np.array([image.id for image in pool], dtype=np.int64)
    pool_ids = pool_ids[store.contains(pool_ids)] if len(pool_ids) else pool_ids
    if len(pool_ids) == 0:
        return None
    ids = pool_candidates(store, head, strategy, pool_ids, seed=seed)
    vectors = store.get(ids)
    labeled_ids = np.array([image.id for image in labeled], dtype=np.int64)
    known = store.contains(labeled_ids) if len(labeled_ids) else np.zeros(0, dtype=bool)
    labeled_vectors = (
        store.get(labeled_ids[known]) if known.any() else np.zeros((0, store.dim), np.float32)
    )
    inputs = SelectionInputs(
        probs=head.predict_proba(vectors),
        embeddings=vectors,
        labeled_embeddings=labeled_vectors,
        labeled_labels=np.asarray(labels, dtype=np.int64)[known],
        k=k,
        seed=seed,
        head=head,
    )
    return RoundInputs(ids, inputs, len(pool_ids))
