"""Keeping the tasks that still wait for a label up to date: the model's suggestion, and an
image URL whose signature has not expired.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.tasks import Suggestion
from service.context import ServiceContext
from service.core.orm import Image, ModelVersion, Round, RoundItem
from service.pool.embeddings import ensure_embeddings, stack

# A waiting task's image URL is signed again once it may expire within this margin.
RESIGN_MARGIN_S = 30 * 86_400


def _waiting() -> tuple[Any, ...]:
    """Conditions on `RoundItem` joined with `Image`: sent, no confirmed label, usable."""
    return (
        RoundItem.task_id.is_not(None),
        RoundItem.withdrawn_at.is_(None),
        Image.label.is_(None),
        Image.unusable_reason.is_(None),
    )


def stale_items(session: Session, model_version: str) -> list[RoundItem]:
    """Sent tasks without a confirmed label whose suggestion came from another model version."""
    return list(
        session.scalars(
            select(RoundItem)
            .join(Image, Image.id == RoundItem.image_id)
            .where(*_waiting(), RoundItem.model_version != model_version)
            .order_by(RoundItem.id)
        )
    )


def resign_expiring_urls(session: Session, ctx: ServiceContext, *, now: float | None = None) -> int:
    """Give waiting tasks whose image URL may expire within `RESIGN_MARGIN_S` a fresh one.

    A task's URL was signed when its round was pushed, after the round was selected, so the
    expiry signed at the round's `created_at` is a lower bound of the task's. No expiry is
    stored per task: a task re-signed once is re-signed again by later refreshes while its
    round is that old, a few redundant calls in exchange for no extra state. Talks to Label
    Studio; call it outside an open transaction. Returns how many tasks got a new URL.
    """
    moment = time.time() if now is None else now
    rounds = session.execute(
        select(Round.id, Round.created_at).where(Round.project_id.is_not(None))
    )
    due = [
        round_id
        for round_id, created in rounds
        if ctx.media.expiry(now=_timestamp(created)) < moment + RESIGN_MARGIN_S
    ]
    if not due:
        return 0
    items = session.scalars(
        select(RoundItem)
        .join(Image, Image.id == RoundItem.image_id)
        .where(*_waiting(), RoundItem.round_id.in_(due))
        .order_by(RoundItem.id)
    ).all()
    for item in items:
        url = ctx.media.url(item.image_id, now=moment)
        ctx.gateway.set_image_url(int(item.task_id or 0), item.image_id, url)
    return len(items)


def _timestamp(moment: datetime) -> float:
    """Unix time of `moment`, read as UTC when naive (SQLite hands back naive datetimes)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def holds_suggestions(session: Session, model_version: str) -> bool:
    """Whether a task in Label Studio carries this version's predictions.

    Label Studio refuses a project model version that no task has predictions of (400), as
    after a retrain or an activation when no task waits any more: then the version in force
    stays, since no waiting task would show the new one anyway.
    """
    found = session.scalar(
        select(RoundItem.id)
        .where(RoundItem.model_version == model_version, RoundItem.task_id.is_not(None))
        .limit(1)
    )
    return found is not None


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
