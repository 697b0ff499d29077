"""The loaded model: one backbone per process, heads loaded from checkpoints on demand.

It also holds the embedding stores (one memory-mapped store per backbone under
`embedding_dir`), so that everything embedding images reaches the same stores. Every
embedding takes the path of `plan` (on CUDA: the device decoder) and is counted for
`/metrics`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.checkpoint import load_checkpoint
from models.device import resolve_device
from models.embedding import EmbeddingResult, embed_images
from models.head import TrainedHead
from models.quantized import INT8_RECIPE
from service.core.metrics import observe_embedding
from service.core.settings import ModelSettings
from service.learning.embedding_plan import EmbeddingPlan, plan_embedding
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
        cuda = self.device.type == "cuda"
        self.device_name = torch.cuda.get_device_name(self.device) if cuda else None
        self._backbone: Backbone | None = None
        self._plan: EmbeddingPlan | None = None
        self._heads: dict[str, TrainedHead] = {}
        self._lock = threading.Lock()

    @property
    def backbone(self) -> Backbone:
        with self._lock:
            if self._backbone is None:
                self._backbone = load_backbone(self.spec)
            return self._backbone

    def load(self) -> None:
        """Load the backbone and choose the embedding path now rather than on first use.

        Raises ``RuntimeUnavailable`` when the configured precision cannot run on the device.
        """
        _ = self.backbone, self.plan

    @property
    def backbone_id(self) -> str:
        """The backbone's id; int8 embeddings differ, so that path gets its own id."""
        suffix = f"+{INT8_RECIPE}" if self.settings.precision == "int8" else ""
        return self.backbone.backbone_id + suffix

    @property
    def plan(self) -> EmbeddingPlan:
        """The embedding path in use: as planned, then as the last run went.

        Raises ``RuntimeUnavailable`` when the configured precision cannot run on the device.
        """
        with self._lock:
            if self._plan is None:
                self._plan = plan_embedding(
                    self.device,
                    self.settings.precision,
                    decoder=self.settings.decoder,
                    batch_size=self.settings.batch_size,
                )
            return self._plan

    @property
    def chunk_size(self) -> int:
        """Images to embed between two commits of a pool's store."""
        return self.plan.chunk_size

    def embed(
        self, paths: Sequence[str | Path], *, progress: Callable[[int, int], None] | None = None
    ) -> EmbeddingResult:
        """Embeddings (n_ok, D) of the given images, failures reported, never raised."""
        plan = self.plan
        result = embed_images(
            paths,
            self.backbone,
            device=plan.device,
            batch_size=plan.batch_size,
            num_workers=self.settings.num_workers,
            precision=self.settings.precision,
            device_decode=plan.device_decode,
            max_pixels=self.max_pixels,
            progress=progress,
        )
        if paths:
            self._ran(plan, result)
        return result

    def _ran(self, plan: EmbeddingPlan, result: EmbeddingResult) -> None:
        """Count the run, and keep the path it took (ONNX Runtime may have fallen back)."""
        taken = plan
        if (result.precision, result.runtime) != (plan.precision, plan.runtime):
            taken = replace(plan, precision=result.precision, runtime=result.runtime)
            with self._lock:
                self._plan = taken
        labels = (str(taken.device), taken.precision, taken.runtime, taken.decoder)
        observe_embedding(labels, len(result.indices), result.seconds)

    def head(self, version: str, checkpoint_path: str | Path) -> TrainedHead:
        with self._lock:
            if version not in self._heads:
                self._heads[version] = load_checkpoint(checkpoint_path)
            return self._heads[version]

    def remember(self, head: TrainedHead) -> None:
        with self._lock:
            self._heads[head.version] = head
