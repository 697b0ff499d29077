"""Fitting the head the guide names (`training.head`), evaluated and calibrated.

`supervised`: the softmax head on the confirmed labels. `semi_supervised`: the same head on
the confirmed labels plus pseudo-labels spread over the pool's kNN graph
(`models.semi_supervised`, graph in `service/learning/pool_graph.py`). Either way the head
is judged on held-out confirmed labels only: each fold's head is trained without the
held-out labels, and the held-out images are never pseudo-labeled either. A pool too small
for the graph falls back to the supervised head, and says so in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from models.evaluation import HeadEvaluation
from models.head import TrainedHead
from models.semi_supervised import SemiSupervisedSettings, train_semi_supervised_head
from models.training import train_head
from models.vector_store import VectorStore
from service.learning.evaluation import evaluate_and_calibrate
from service.learning.pool_graph import pool_affinity

log = logging.getLogger(__name__)
SEMI_SUPERVISED = SemiSupervisedSettings()
# Each fold trains on the whole pool's pseudo-labels: 3 folds, not 5, keep a retrain of a
# 60,000-image pool near 10 s on two cores (docs/benchmarks.md).
SEMI_SUPERVISED_FOLDS = 3
# One pool image in HELD_BACK_EVERY is never pseudo-labeled (chosen by a hash of its id), so
# prediction drift has reference images the head did not fit: on images it trained on, even
# as pseudo-labels, its confidence is higher than on new images of the same kind.
HELD_BACK_EVERY = 5
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
EpochProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class FittedHead:
    head: TrainedHead
    evaluation: HeadEvaluation | None
    kind: str  # the head actually trained: "supervised" or "semi_supervised"
    note: str = ""  # why it differs from the guide's, when it does


def fit_head(
    kind: str,
    store: VectorStore | None,
    image_ids: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    class_names: list[str],
    backbone_id: str,
    epochs: int,
    progress: EpochProgress | None = None,
) -> FittedHead:
    """The guide's head on ``labels`` of ``image_ids`` (embeddings ``(n, D)`` in that order)."""
    if kind == "semi_supervised":
        note = _unusable_pool(store, image_ids)
        if not note:
            assert store is not None
            return _semi_supervised(
                store, image_ids, embeddings, labels, class_names, backbone_id, epochs, progress
            )
        log.info("training the supervised head instead: %s", note)
    else:
        note = ""
    head = train_head(
        embeddings,
        labels,
        class_names=class_names,
        backbone_id=backbone_id,
        epochs=epochs,
        progress=progress,
    )
    head, evaluation = evaluate_and_calibrate(head, embeddings, labels, epochs=epochs)
    return FittedHead(head, evaluation, "supervised", note)


def _unusable_pool(store: VectorStore | None, image_ids: np.ndarray) -> str:
    if store is None:
        return "no stored embeddings"
    store.refresh()
    if len(store) <= SEMI_SUPERVISED.k + 1:
        return f"a pool of {len(store)} stored images is too small for its kNN graph"
    if len(store) <= len(image_ids):
        return "every stored image is labeled: nothing to learn from"
    return ""


def _semi_supervised(
    store: VectorStore,
    image_ids: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    backbone_id: str,
    epochs: int,
    progress: EpochProgress | None,
) -> FittedHead:
    pool = pool_affinity(store, SEMI_SUPERVISED)
    rows = _rows_in(pool.ids, image_ids)

    projected = pool.projected
    never = np.flatnonzero(held_back(pool.ids))

    def read(wanted: np.ndarray) -> np.ndarray:
        return store.get(pool.ids[wanted]) if projected is None else projected[wanted]

    def train(
        inside: np.ndarray, outside: np.ndarray, report: EpochProgress | None = None
    ) -> TrainedHead:
        return train_semi_supervised_head(
            read,
            pool.affinity,
            rows[inside],
            labels[inside],
            class_names=class_names,
            backbone_id=backbone_id,
            settings=SEMI_SUPERVISED,
            epochs=epochs,
            exclude_rows=np.union1d(rows[outside], never),
            projection=pool.projection,
            progress=report,
        )

    everything = np.arange(len(labels))
    head = train(everything, everything[:0], progress)
    head, evaluation = evaluate_and_calibrate(
        head, embeddings, labels, epochs=epochs, train_rows=train, folds=SEMI_SUPERVISED_FOLDS
    )
    return FittedHead(head, evaluation, "semi_supervised")


def held_back(image_ids: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: which of ``image_ids`` a semi-supervised head never learns from."""
    ids = np.asarray(image_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):  # the hash wraps around on purpose
        mixed = (ids * _GOLDEN) >> np.uint64(32)
    return (mixed % np.uint64(HELD_BACK_EVERY)) == 0


def trained_on_pool(metrics: dict[str, float]) -> bool:
    """Whether a version's head learned from unlabeled pool images (its training metrics)."""
    return "pseudo_labels" in metrics


def _rows_in(pool_ids: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Row of each of ``image_ids`` among ``pool_ids``; every one must be there."""
    order = np.argsort(pool_ids, kind="stable")
    found = np.searchsorted(pool_ids, image_ids, sorter=order)
    found = np.minimum(found, len(pool_ids) - 1)
    rows = order[found]
    if not np.array_equal(pool_ids[rows], image_ids):
        raise RuntimeError("a labeled image's embedding is missing from the pool's graph")
    return rows.astype(np.int64)
