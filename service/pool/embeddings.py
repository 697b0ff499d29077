"""Embeddings computed once per (image, backbone) and kept in the backbone's vector store.

The store (`service/pool/vectors.py`) is append-only and memory-mapped: nothing holds a
whole pool's vectors unless a caller asks for them. `embed_missing` computes what is not
stored yet; `ensure_embeddings` does that and returns the vectors of the images given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy.orm import Session

from models.embedding import EmbeddingResult
from models.vector_store import VectorStore
from service.core.orm import Image
from service.core.progress import Progress, no_progress
from service.pool.vectors import EmbeddingStores


class Embedder(Protocol):
    """What the pool needs of a model: which backbone, its stores, a batched embedding."""

    @property
    def backbone_id(self) -> str: ...

    @property
    def embedding_stores(self) -> EmbeddingStores: ...

    @property
    def chunk_size(self) -> int: ...  # images embedded between two commits

    def embed(
        self, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None
    ) -> EmbeddingResult: ...


# A file that cannot be opened now (a share offline, a file being replaced) may be readable
# later: it is left out of this run only. Any other failure is the content's: permanent
# until `retry_image` finds the file fixed.
TRANSIENT_CODES = frozenset({"image_unreadable"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingRun:
    """What `embed_missing` did: images embedded, seconds taken, files unreadable for now."""

    computed: int
    seconds: float
    unreadable: list[int] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class StoredEmbeddings:
    vectors: dict[int, np.ndarray]  # image id -> (D,) float32
    computed: int  # how many were embedded by this call
    seconds: float  # how long that took
    unreadable: list[int] = field(default_factory=list)  # left out this time only

    @property
    def images_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def embedding_store(session: Session, runtime: Embedder) -> VectorStore | None:
    """The running backbone's store (legacy database blobs copied in first), or None if empty."""
    stores = runtime.embedding_stores
    stores.adopt_legacy(session, runtime.backbone_id)
    return stores.get(runtime.backbone_id)


def ensure_embeddings(
    session: Session,
    runtime: Embedder,
    images: Sequence[Image],
    *,
    progress: Progress = no_progress,
) -> StoredEmbeddings:
    """Embeddings of every usable image given; missing ones are computed and stored.

    Images that fail to decode are marked unusable (with the reason) and left out; images
    whose file cannot be read now are left out of this call only (`unreadable`).
    """
    run = embed_missing(session, runtime, images, progress=progress)
    store = embedding_store(session, runtime)
    ids = np.array([image.id for image in images], dtype=np.int64)
    vectors: dict[int, np.ndarray] = {}
    if store is not None and len(ids):
        rows = store.rows_of(ids)
        found = ids[rows >= 0]
        matrix = store.get(found)
        vectors = {int(i): matrix[n] for n, i in enumerate(found.tolist())}
    return StoredEmbeddings(vectors, run.computed, run.seconds, run.unreadable)


def embed_missing(
    session: Session,
    runtime: Embedder,
    images: Sequence[Image],
    *,
    progress: Progress = no_progress,
) -> EmbeddingRun:
    """Embed and store the usable images given that the store lacks; commits per chunk."""
    store = embedding_store(session, runtime)
    ids = np.array([image.id for image in images], dtype=np.int64)
    stored = store.contains(ids) if store is not None else np.zeros(len(ids), dtype=bool)
    missing = [
        image
        for image, known in zip(images, stored.tolist(), strict=True)
        if not known and not image.unusable_reason
    ]
    if missing:  # committed per chunk anyway: no write stays pending while the backbone runs
        session.commit()
    started, done, unreadable, size = time.monotonic(), 0, [], runtime.chunk_size
    for start in range(0, len(missing), size):
        chunk = missing[start : start + size]
        report = _reporter(progress, started, done, len(missing))
        result = runtime.embed([image.path for image in chunk], progress=report)
        if len(result.indices):
            vectors = np.asarray(result.embeddings, dtype=np.float32)
            target = runtime.embedding_stores.get(runtime.backbone_id, dim=vectors.shape[1])
            assert target is not None  # created with the dim given
            target.append(np.array([chunk[i].id for i in result.indices]), vectors)
        unreadable.extend(_note_failures(chunk, result))
        session.commit()
        done += len(chunk)
    return EmbeddingRun(done, time.monotonic() - started, unreadable)


def _reporter(
    progress: Progress, started: float, offset: int, total: int
) -> Callable[[int, int], None]:
    def report(batch_done: int, _total: int) -> None:
        seen = offset + batch_done
        rate = seen / max(time.monotonic() - started, 1e-9)
        progress(seen / total, f"embedded {seen}/{total} images ({rate:.1f} images/s)")

    return report


def _note_failures(chunk: list[Image], result: EmbeddingResult) -> list[int]:
    """Mark images that cannot decode unusable; returns those unreadable for now."""
    unreadable = []
    for failure in result.failures:
        image = chunk[failure.index]
        if failure.code in TRANSIENT_CODES:
            unreadable.append(image.id)
            log.warning("image %d unreadable for now: %s", image.id, failure.reason)
        else:
            image.unusable_reason = f"{failure.code}: {failure.reason}"
    return unreadable


def stack(vectors: dict[int, np.ndarray], image_ids: Sequence[int]) -> np.ndarray:
    """Embeddings (n, D) in the order of `image_ids`."""
    if not image_ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([vectors[i] for i in image_ids]).astype(np.float32, copy=False)
