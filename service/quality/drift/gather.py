"""The arrays a drift report needs, read from the database (embedding what is missing).

`gather` reads one window `(start, end]`: the reference sample's embeddings and the new
images', the active model's class probabilities on both (on reference images the model was not
trained on), the labels confirmed in the window and the annotators' answers in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.progress import Progress, no_progress, scaled
from service.learning.heads import held_back, trained_on_pool
from service.learning.versions import active_model
from service.pool.embeddings import ensure_embeddings, stack
from service.quality.data import latest_answers
from service.quality.drift.data import (
    Sample,
    aware,
    labels_in_window,
    new_sample,
    reference_sample,
)
from service.quality.drift.tables import DriftReference


@dataclass
class Embedded:
    """A sample's embeddings ``(n, D)`` with the ids and names of its rows."""

    vectors: np.ndarray
    ids: list[int | None]
    names: list[str | None]
    labeled: np.ndarray  # (n,) bool: has a confirmed label (the model may have trained on it)


@dataclass
class Gathered:
    reference: Embedded
    new: Embedded
    model_version: str | None = None
    reference_probs: np.ndarray | None = None  # (m', C), unlabeled reference images only
    new_probs: np.ndarray | None = None  # (n, C)
    labels: list[str] = field(default_factory=list)
    answer_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    answer_annotators: list[str] = field(default_factory=list)


def embedded(session: Session, ctx: ServiceContext, sample: Sample, progress: Progress) -> Embedded:
    """Stored (or newly computed) embeddings of `sample`; unreadable images drop out."""
    stored = ensure_embeddings(session, ctx.runtime, sample.images, progress=progress)
    kept = [image for image in sample.images if image.id in stored.vectors]
    return Embedded(
        vectors=stack(stored.vectors, [image.id for image in kept]),
        ids=[image.id for image in kept],
        names=[image.path.rsplit("/", 1)[-1] for image in kept],
        labeled=np.array([image.label is not None for image in kept], dtype=bool),
    )


def probabilities(
    session: Session, ctx: ServiceContext, reference: Embedded, new: np.ndarray
) -> tuple[str | None, np.ndarray | None, np.ndarray | None]:
    """(model version, probs on unlabeled reference images, probs on `new`), or Nones.

    Reference images the head learned from are left out: labeled ones, and for a
    semi-supervised head every pool image but those held back from its pseudo-labels.
    """
    model = active_model(session, ctx)
    if model is None or len(new) == 0 or len(reference.ids) == 0:
        return (model.id if model else None), None, None
    head = ctx.runtime.head(model.id, model.checkpoint_path)
    unseen = ~reference.labeled
    if trained_on_pool(model.metrics):  # only the pool images it never pseudo-labeled
        ids = np.array([-1 if i is None else i for i in reference.ids], dtype=np.int64)
        unseen &= held_back(ids)
    unlabeled = reference.vectors[unseen]
    ref_probs = head.predict_proba(unlabeled) if len(unlabeled) else None
    return model.id, ref_probs, head.predict_proba(new)


def gather(
    session: Session,
    ctx: ServiceContext,
    reference: DriftReference,
    start: datetime,
    end: datetime,
    *,
    progress: Progress = no_progress,
) -> Gathered:
    """Everything the checks of window `(start, end]` need."""
    ref = embedded(session, ctx, reference_sample(session, reference), scaled(progress, 0, 0.4))
    new = embedded(session, ctx, new_sample(session, start, end), scaled(progress, 0.4, 0.8))
    version, ref_probs, new_probs = probabilities(session, ctx, ref, new.vectors)
    guide = ctx.guide
    answers = [
        a for a in latest_answers(session, guide) if a.at is not None and start < aware(a.at) <= end
    ]
    return Gathered(
        reference=ref,
        new=new,
        model_version=version,
        reference_probs=ref_probs,
        new_probs=new_probs,
        labels=labels_in_window(session, start, end),
        answer_labels=np.array([a.label for a in answers], dtype=np.int64),
        answer_annotators=[str(a.annotator) for a in answers],
    )
