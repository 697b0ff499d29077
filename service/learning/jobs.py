"""Learning's job handler: training a model version.

`TRAIN_KIND` is declared in `studio/jobs.py`, which runs this handler and then refreshes the
suggestions of tasks waiting in Label Studio (a layer learning may not import).
"""

from __future__ import annotations

from typing import Any

from service.context import ServiceContext
from service.jobs.registry import JobContext, JobSpec
from service.learning.training import labels_outside_guide, train_model

TRAIN_KIND = "train"
MODEL_SCOPE = "model"  # one training at a time


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


HANDLERS: dict[str, JobSpec] = {}  # TRAIN_KIND: see the module docstring
