"""Where embeddings live: one append-only, memory-mapped store per backbone under the data dir.

`EmbeddingStores` opens each backbone's `models.vector_store.VectorStore` once per process
(`<embedding_dir>/<architecture>-<hash of the backbone id>/`). Databases from before the
stores kept embeddings as blobs in the `embeddings` table: the first time a process opens a
backbone's store it copies that backbone's blobs into it and deletes them
(`copy_legacy_blobs`), so the copy happens once, and again only for rows a crash left.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.vector_store import VectorStore
from service.core.orm import Embedding

LEGACY_CHUNK = 5000  # blobs copied per query
log = logging.getLogger(__name__)


def store_dir(root: Path, backbone_id: str) -> Path:
    """The folder of `backbone_id`'s store: a readable prefix and a hash of the whole id."""
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", backbone_id.split(":")[0])[:40] or "backbone"
    digest = hashlib.sha256(backbone_id.encode()).hexdigest()[:16]
    return root / f"{prefix}-{digest}"


class EmbeddingStores:
    """The stores of every backbone under `root`, opened once each and shared by threads."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._open: dict[str, VectorStore] = {}
        self._legacy_done: set[str] = set()
        self._lock = threading.Lock()

    def get(self, backbone_id: str, *, dim: int | None = None) -> VectorStore | None:
        """`backbone_id`'s store, created when `dim` is given; None when none exists yet."""
        with self._lock:
            store = self._open.get(backbone_id)
            if store is None:
                folder = store_dir(self.root, backbone_id)
                if dim is None and not folder.exists():
                    return None
                store = VectorStore.open(folder, dim=dim, backbone_id=backbone_id)
                self._open[backbone_id] = store
        store.refresh()  # rows appended by other processes
        return store

    def adopt_legacy(self, session: Session, backbone_id: str) -> int:
        """Copy `backbone_id`'s blobs from the `embeddings` table once per process (flush only)."""
        with self._lock:
            if backbone_id in self._legacy_done:
                return 0
        copied = copy_legacy_blobs(session, self, backbone_id)
        with self._lock:
            self._legacy_done.add(backbone_id)
        return copied


def copy_legacy_blobs(session: Session, stores: EmbeddingStores, backbone_id: str) -> int:
    """Move `backbone_id`'s rows of the `embeddings` table into its store; returns how many.

    The store's append is durable before the rows are deleted (in the caller's transaction),
    so a crash in between only leaves rows that the next copy skips and deletes.
    """
    moved = 0
    while True:
        rows = session.execute(
            select(Embedding.image_id, Embedding.vector)
            .where(Embedding.backbone_id == backbone_id)
            .order_by(Embedding.image_id)
            .limit(LEGACY_CHUNK)
        ).all()
        if not rows:
            break
        ids = np.array([image_id for image_id, _ in rows], dtype=np.int64)
        vectors = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
        store = stores.get(backbone_id, dim=vectors.shape[1])
        assert store is not None  # created with the dim given
        store.append(ids, vectors)
        session.execute(
            delete(Embedding).where(
                Embedding.backbone_id == backbone_id, Embedding.image_id.in_(ids.tolist())
            )
        )
        session.flush()
        moved += len(rows)
    if moved:
        log.info("copied %d embeddings of %s from the database into its store", moved, backbone_id)
    return moved
