"""Setup, model versions and "Start training" of Label Studio's ML backend protocol."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select

from labeling.label_config import parse_choices_config
from service.context import ServiceContext
from service.core.errors import NotEnoughLabels
from service.core.orm import Image, ModelVersion
from service.jobs.queue import enqueue
from service.learning.gold import GOLD_SOURCE
from service.learning.jobs import MODEL_SCOPE, TRAIN_KIND
from service.learning.versions import active_model
from service.studio.ml_backend.predict import label_columns

log = logging.getLogger(__name__)
START_TRAINING = "START_TRAINING"


@dataclass(frozen=True)
class TrainingStarted:
    job_id: str
    status: str  # queued, or running when a training job was already under way


def setup(ctx: ServiceContext, schema: str | None) -> str | None:
    """The active model version (None before the first training).

    A labeling config sent along is checked: one whose Choices share no label with the guide
    is refused (`label_config_mismatch`), so connecting fails instead of predicting nothing.
    """
    with ctx.sessions() as session:
        model = active_model(session, ctx)
    if schema:
        target = parse_choices_config(schema)
        label_columns(model.class_names if model else ctx.guide.label_names, target.choices)
    return model.id if model else None


def versions(ctx: ServiceContext) -> list[str]:
    """The trained versions of the running backbone, the newest first."""
    with ctx.sessions() as session:
        query = (
            select(ModelVersion.id)
            .where(ModelVersion.backbone_id == ctx.runtime.backbone_id)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.id)
        )
        return list(session.scalars(query))


def start_training(ctx: ServiceContext) -> TrainingStarted:
    """Enqueue the `train` job (the one already queued or running, if any); a use case.

    Refused with `not_enough_labels` while fewer confirmed labels exist than training needs,
    so that Label Studio shows an error instead of a training that never ends.
    """
    minimum = ctx.settings.model.min_labels_to_train
    with ctx.sessions() as session:
        labeled = session.scalar(
            select(func.count())
            .select_from(Image)
            .where(
                Image.label.in_(ctx.guide.label_names),
                Image.unusable_reason.is_(None),
                Image.source != GOLD_SOURCE,
            )
        )
        if (labeled or 0) < minimum:
            raise NotEnoughLabels(
                f"{labeled or 0} confirmed labels; training needs at least {minimum}"
            )
        job = enqueue(session, TRAIN_KIND, {}, scope=MODEL_SCOPE)
        session.commit()
        log.info("training job %s %s, started from Label Studio", job.id, job.status)
        return TrainingStarted(job.id, job.status)
