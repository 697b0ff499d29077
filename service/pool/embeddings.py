"""Embeddings computed once per (image, backbone) and kept in the database."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.embedding import EmbeddingResult
from service.core.orm import Embedding, Image
from service.core.progress import Progress, no_progress


class Embedder(Protocol):
    """What the store needs of a model: which backbone, and a batched embedding of files."""

    @property
    def backbone_id(self) -> str: ...

    def embed(
        self, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None
    ) -> EmbeddingResult: ...


CHUNK = 512  # images embedded between two commits
# A file that cannot be opened now (a share offline, a file being replaced) may be readable
# later: it is left out of this run only. Any other failure is the content's: permanent
# until `retry_image` finds the file fixed.
TRANSIENT_CODES = frozenset({"image_unreadable"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredEmbeddings:
    vectors: dict[int, np.ndarray]  # image id -> (D,) float32
    computed: int  # how many were embedded by this call
    seconds: float  # how long that took
    unreadable: list[int] = field(default_factory=list)  # left out this time only

    @property
    def images_per_second(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else 0.0


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
    backbone_id = runtime.backbone_id
    vectors = _stored(session, backbone_id, [image.id for image in images])
    missing = [image for image in images if image.id not in vectors and not image.unusable_reason]
    started, done, unreadable = time.monotonic(), 0, []
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]

        def report(batch_done: int, _total: int, offset: int = done) -> None:
            seen = offset + batch_done
            rate = seen / max(time.monotonic() - started, 1e-9)
            progress(
                seen / len(missing), f"embedded {seen}/{len(missing)} images ({rate:.1f} images/s)"
            )

        result = runtime.embed([image.path for image in chunk], progress=report)
        rows = []
        for position, vector in zip(result.indices, result.embeddings, strict=True):
            image = chunk[position]
            blob = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            rows.append({"image_id": image.id, "backbone_id": backbone_id, "vector": blob})
            vectors[image.id] = vector.astype(np.float32)
        _insert_new(session, rows)
        for failure in result.failures:
            image = chunk[failure.index]
            if failure.code in TRANSIENT_CODES:
                unreadable.append(image.id)
                log.warning("image %d unreadable for now: %s", image.id, failure.reason)
            else:
                image.unusable_reason = f"{failure.code}: {failure.reason}"
        session.commit()
        done += len(chunk)
    return StoredEmbeddings(vectors, done, time.monotonic() - started, unreadable)


def _insert_new(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert embeddings, keeping any that a concurrent request stored first (same content)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(Embedding).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(Embedding).on_conflict_do_nothing()
    else:
        statement = insert(Embedding)
    session.execute(statement, rows)


def _stored(session: Session, backbone_id: str, image_ids: list[int]) -> dict[int, np.ndarray]:
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(image_ids), 5000):
        rows = session.execute(
            select(Embedding.image_id, Embedding.vector).where(
                Embedding.backbone_id == backbone_id,
                Embedding.image_id.in_(image_ids[start : start + 5000]),
            )
        )
        for image_id, blob in rows:
            found[image_id] = np.frombuffer(blob, dtype=np.float32)
    return found


def stack(vectors: dict[int, np.ndarray], image_ids: Sequence[int]) -> np.ndarray:
    """Embeddings (n, D) in the order of `image_ids`."""
    if not image_ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([vectors[i] for i in image_ids]).astype(np.float32, copy=False)
