"""What every use case needs, built once per process (or per test): the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from labeling.gateway import LabelStudioGateway
from service.auth.keys import SkippedUses
from service.auth.signing import MediaSigner
from service.core.db import READ, WRITE, bind_for
from service.core.gpu_metrics import NvmlCollector
from service.core.settings import Settings
from service.learning.runtime import ModelRuntime
from service.studio.ml_backend.cache import EmbeddingCache

# Told after a commit which images' annotations changed (None: any of them may have).
AnnotationHook = Callable[[set[int] | None], None]


@dataclass
class ServiceContext:
    settings: Settings
    guide: Guide
    engine: Engine
    sessions: sessionmaker[Session]
    runtime: ModelRuntime
    gateway: LabelStudioGateway
    media: MediaSigner  # signs the image URLs handed to annotators' browsers
    annotation_hooks: list[AnnotationHook] = field(default_factory=list)
    # GPU utilisation and memory for `/metrics` (nothing where NVML is unavailable).
    gpu_metrics: NvmlCollector = field(default_factory=NvmlCollector)
    # API key uses a busy database left unrecorded (logged once a minute per key).
    skipped_key_uses: SkippedUses = field(default_factory=SkippedUses)
    # Embeddings of images fetched for Label Studio's `/predict`, by content (bounded).
    fetched_embeddings: EmbeddingCache = field(init=False)
    _binds: dict[str, Engine] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fetched_embeddings = EmbeddingCache(self.settings.ml_backend.embedding_cache_size)
        self._binds = {kind: bind_for(self.engine, kind) for kind in (READ, WRITE)}

    def reading(self) -> Session:
        """A read-only session: it never takes the write lock (see `service.core.db`)."""
        return self.sessions(bind=self._binds[READ])

    def writing(self, *, wait_s: float | None = None) -> Session:
        """A unit of work that writes: it takes the write lock when it begins.

        `wait_s` bounds its wait for the lock below the busy timeout (a note that may wait).
        """
        if wait_s is None:
            return self.sessions(bind=self._binds[WRITE])
        return self.sessions(bind=bind_for(self.engine, WRITE, busy_timeout_s=wait_s))

    def annotations_changed(self, image_ids: set[int] | None) -> None:
        """Tell the hooks (such as live agreement) about committed annotation changes."""
        for hook in self.annotation_hooks:
            hook(image_ids)
