"""An active-learning round: score the unlabeled pool, pick the top K, push them to Label Studio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.studio_config import project_spec
from labeling.tasks import Suggestion, TaskDraft
from models.uncertainty import get_strategy, rank_by_score
from service.context import Progress, ServiceContext, no_progress, scaled
from service.embedding_store import ensure_embeddings, stack
from service.errors import NoModel, NotFound
from service.orm import Image, Round, RoundItem
from service.suggestions import refresh_pending_suggestions
from service.training import current_model, needs_training, train_model


@dataclass(frozen=True)
class RoundRequest:
    k: int = 20
    strategy: str = "entropy"
    retrain: bool = True


def candidate_images(session: Session) -> list[Image]:
    """Usable images with no confirmed label that were never sent to annotators."""
    already_sent = select(RoundItem.image_id)
    return list(
        session.scalars(
            select(Image)
            .where(
                Image.label.is_(None),
                Image.unusable_reason.is_(None),
                Image.id.not_in(already_sent),
            )
            .order_by(Image.id)
        )
    )


def select_round(
    session: Session,
    ctx: ServiceContext,
    request: RoundRequest,
    *,
    progress: Progress = no_progress,
) -> Round:
    """Choose the round's batch and record it (not yet pushed)."""
    strategy = get_strategy(request.strategy)
    model = current_model(session, ctx)
    if request.retrain and needs_training(session, model):
        model = train_model(session, ctx, progress=scaled(progress, 0.0, 0.2))
    if model is None:
        raise NoModel("no trained model yet: import seed labels, then train or run with retrain")
    head = ctx.runtime.head(model.id, model.checkpoint_path)
    images = candidate_images(session)
    stored = ensure_embeddings(session, ctx.runtime, images, progress=scaled(progress, 0.2, 0.85))
    vectors = stored.vectors
    pool = [image for image in images if image.id in vectors]
    round_ = Round(
        strategy=request.strategy,
        k=request.k,
        model_version=model.id,
        pool_size=len(pool),
        embedded=stored.computed,
        embedding_rate=round(stored.images_per_second, 2),
    )
    session.add(round_)
    session.flush()
    if pool:
        probs = head.predict_proba(stack(vectors, [image.id for image in pool]))
        scores = strategy(probs)
        chosen = rank_by_score(scores, k=request.k)
        _add_items(session, round_, pool, probs, scores, chosen, ctx.guide.label_names)
    session.commit()
    progress(0.9, f"selected {min(request.k, len(pool))} of {len(pool)} images")
    return round_


def _add_items(
    session: Session,
    round_: Round,
    pool: list[Image],
    probs: np.ndarray,
    scores: np.ndarray,
    chosen: np.ndarray,
    class_names: list[str],
) -> None:
    for rank, index in enumerate(chosen.tolist(), start=1):
        top = int(np.argmax(probs[index]))
        session.add(
            RoundItem(
                round_id=round_.id,
                image_id=pool[index].id,
                rank=rank,
                score=float(scores[index]),
                predicted_label=class_names[top],
                predicted_probability=float(probs[index, top]),
                model_version=round_.model_version,
            )
        )


def round_items(session: Session, round_id: int) -> list[RoundItem]:
    return list(
        session.scalars(
            select(RoundItem).where(RoundItem.round_id == round_id).order_by(RoundItem.rank)
        )
    )


def push_round(session: Session, ctx: ServiceContext, round_id: int) -> Round:
    """Send the round's images to Label Studio in rank order; safe to call again after a failure.

    The round is marked `pushing` before the import. A round found in that state was cut
    off mid-push: its images are matched to the tasks already in the project, never
    imported twice.
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFound(f"round {round_id} does not exist")
    project_id = ctx.gateway.ensure_project(
        project_spec(ctx.guide, title=ctx.settings.label_studio.project_title)
    )
    round_.project_id = project_id
    items = round_items(session, round_id)
    if round_.status == "pushing":
        existing = {task.image_id: task.task_id for task in ctx.gateway.list_tasks(project_id)}
        for item in items:
            item.task_id = item.task_id or existing.get(item.image_id)
    round_.status = "pushing"
    session.commit()
    pending = [item for item in items if item.task_id is None]
    drafts = [_draft(item, round_, ctx.settings.public_url) for item in pending]
    for item, task_id in zip(pending, ctx.gateway.import_tasks(project_id, drafts), strict=True):
        item.task_id = task_id
    round_.status = "pushed"
    session.commit()
    refresh_pending_suggestions(session, ctx, project_id, round_.model_version)
    ctx.gateway.use_model_version(project_id, round_.model_version)
    return round_


def _draft(item: RoundItem, round_: Round, public_url: str) -> TaskDraft:
    return TaskDraft(
        image_id=item.image_id,
        image_url=f"{public_url.rstrip('/')}/media/{item.image_id}",
        suggestion=Suggestion(
            label=item.predicted_label,
            score=item.predicted_probability,
            model_version=item.model_version,
        ),
        meta={"round": round_.id, "rank": item.rank, "uncertainty": round(item.score, 6)},
    )


def run_round(
    ctx: ServiceContext, request: RoundRequest, *, progress: Progress = no_progress
) -> Round:
    """Select a batch and push it: one whole round."""
    with ctx.sessions() as session:
        round_ = select_round(session, ctx, request, progress=progress)
        progress(0.9, "pushing tasks to Label Studio")
        pushed = push_round(session, ctx, round_.id)
        progress(1.0, f"round {pushed.id}: {len(round_items(session, pushed.id))} tasks pushed")
        return pushed
