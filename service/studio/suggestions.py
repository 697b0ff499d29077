"""Keeping the suggestions of tasks that still wait for a label up to date with the model."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.tasks import Suggestion
from service.context import ServiceContext
from service.core.orm import Image, ModelVersion, RoundItem
from service.pool.embeddings import ensure_embeddings, stack


def stale_items(session: Session, model_version: str) -> list[RoundItem]:
    """Sent tasks without a confirmed label whose suggestion came from another model version."""
    return list(
        session.scalars(
            select(RoundItem)
            .join(Image, Image.id == RoundItem.image_id)
            .where(
                RoundItem.task_id.is_not(None),
                Image.label.is_(None),
                Image.unusable_reason.is_(None),
                RoundItem.model_version != model_version,
            )
            .order_by(RoundItem.id)
        )
    )


def refresh_pending_suggestions(
    session: Session, ctx: ServiceContext, project_id: int, model_version: str
) -> int:
    """Give every waiting task the suggestion of `model_version`; returns how many changed.

    Label Studio pre-fills an annotation from the predictions of the project's model version
    only, so tasks from earlier rounds would otherwise open empty after a retrain.
    """
    items = stale_items(session, model_version)
    model = session.get(ModelVersion, model_version)
    if not items or model is None:
        return 0
    head = ctx.runtime.head(model.id, model.checkpoint_path)
    images = [session.get(Image, item.image_id) for item in items]
    vectors = ensure_embeddings(session, ctx.runtime, [i for i in images if i]).vectors
    items = [item for item in items if item.image_id in vectors]
    probs = head.predict_proba(stack(vectors, [item.image_id for item in items]))
    suggestions: list[tuple[int, Suggestion]] = []
    for item, row in zip(items, probs, strict=True):
        top = int(np.argmax(row))
        item.predicted_label = ctx.guide.label_names[top]
        item.predicted_probability = float(row[top])
        item.model_version = model_version
        suggestions.append(
            (
                int(item.task_id or 0),
                Suggestion(item.predicted_label, float(row[top]), model_version),
            )
        )
    ctx.gateway.add_predictions(project_id, suggestions)
    session.commit()
    return len(suggestions)
