"""Embeddings of images fetched for `/predict`, kept in memory by content, the least recent out.

Label Studio asks again for tasks a call left without a prediction (a spent time budget, a
timeout on its side): the images already embedded then cost a fetch and a hash, not a run of
the backbone. Keys are the backbone id and the SHA-256 of the image bytes, so an image that
changes behind the same URL is embedded again.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np


def content_key(backbone_id: str, body: bytes) -> str:
    """The cache key of `body` embedded by `backbone_id`."""
    return f"{backbone_id}:{hashlib.sha256(body).hexdigest()}"


class EmbeddingCache:
    """At most `capacity` (D,) float32 vectors by key, shared by threads; 0 keeps nothing."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"expected a capacity of 0 or more, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, key: str) -> np.ndarray | None:
        """The vector under `key` (now the most recent), or None; counted as hit or miss."""
        with self._lock:
            vector = self._vectors.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._vectors.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: str, vector: np.ndarray) -> None:
        """Keep `vector` (read-only) under `key`, dropping the least recent past capacity."""
        if self.capacity == 0:
            return
        kept = np.array(vector, dtype=np.float32)
        kept.flags.writeable = False
        with self._lock:
            self._vectors[key] = kept
            self._vectors.move_to_end(key)
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)
