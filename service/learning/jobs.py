"""Learning's jobs: training a model version."""

from __future__ import annotations

from typing import Any

from service.context import ServiceContext
from service.jobs.registry import JobContext, JobSpec
from service.learning.training import labels_outside_guide, train_model

MODEL_SCOPE = "model"


def train(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Train on every confirmed label; the same labels give the same version (idempotent)."""
    with ctx.sessions() as session:
        version = train_model(session, ctx, progress=job.progress)
        return {
            "model_version": version.id,
            "n_train": version.n_train,
            "metrics": version.metrics,
            "labels_outside_guide": labels_outside_guide(session, ctx.guide),  # not trained on
        }


HANDLERS = {"train": JobSpec("train", train)}
