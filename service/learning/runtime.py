"""The loaded model: one backbone per process, heads loaded from checkpoints on demand.

It also holds the embedding stores (one memory-mapped store per backbone under
`embedding_dir`), so that everything embedding images reaches the same stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.checkpoint import load_checkpoint
from models.device import resolve_device
from models.embedding import EmbeddingResult, embed_images
from models.head import TrainedHead
from models.quantized import INT8_RECIPE
from service.core.settings import ModelSettings
from service.pool.vectors import EmbeddingStores


class ModelRuntime:
    """Holds the frozen backbone and a cache of trained heads, safe to share across threads."""

    def __init__(self, settings: ModelSettings, *, max_pixels: int, embedding_dir: Path) -> None:
        self.settings = settings
        self.max_pixels = max_pixels
        self.embedding_stores = EmbeddingStores(embedding_dir)
        self.spec = BackboneSpec(
            architecture=settings.architecture,
            weights=settings.weights,
            image_size=settings.image_size,
        )
        self.device: torch.device = resolve_device(settings.device)
        self._backbone: Backbone | None = None
        self._heads: dict[str, TrainedHead] = {}
        self._lock = threading.Lock()

    @property
    def backbone(self) -> Backbone:
        with self._lock:
            if self._backbone is None:
                self._backbone = load_backbone(self.spec)
            return self._backbone

    def load(self) -> None:
        """Load the backbone now rather than on first use."""
        _ = self.backbone

    @property
    def backbone_id(self) -> str:
        """The backbone's id; int8 embeddings differ, so that path gets its own id."""
        suffix = f"+{INT8_RECIPE}" if self.settings.precision == "int8" else ""
        return self.backbone.backbone_id + suffix

    def embed(
        self, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None
    ) -> EmbeddingResult:
        """Embeddings (n_ok, D) of the given images, failures reported, never raised."""
        return embed_images(
            paths,
            self.backbone,
            device=self.device,
            batch_size=self.settings.batch_size,
            num_workers=self.settings.num_workers,
            precision=self.settings.precision,
            max_pixels=self.max_pixels,
            progress=progress,
        )

    def head(self, version: str, checkpoint_path: str | Path) -> TrainedHead:
        with self._lock:
            if version not in self._heads:
                self._heads[version] = load_checkpoint(checkpoint_path)
            return self._heads[version]

    def remember(self, head: TrainedHead) -> None:
        with self._lock:
            self._heads[head.version] = head
