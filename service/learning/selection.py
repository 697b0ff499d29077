"""Choosing a round: score the unlabeled pool with the current model and record the top K."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.uncertainty import get_strategy, rank_by_score
from service.audit import record
from service.context import ServiceContext
from service.core.errors import NoModel
from service.core.orm import Annotation, DeletedTask, Image, Round, RoundItem
from service.core.progress import Progress, no_progress, scaled
from service.learning.gold import GOLD_SOURCE, mix_gold
from service.learning.training import current_model, needs_training, train_model
from service.pool.embeddings import ensure_embeddings, stack


@dataclass(frozen=True)
class RoundRequest:
    k: int = 20
    strategy: str = "entropy"
    retrain: bool = True


def candidate_images(session: Session) -> list[Image]:
    """Usable images with no confirmed label that no live task holds.

    A task holds its image while it waits for annotators or has an accepted annotation.
    It lets the image go back to the pool when it was deleted, or when every live
    annotation on it is cancelled (skipped) or rejected. A round that was selected but
    never pushed holds nothing; one cut off mid-push (`pushing`) holds its images, since
    resuming it matches them to the tasks already imported.
    """
    live = Annotation.deleted.is_(False)
    accepted = func.sum(case((Annotation.status == "accepted", 1), else_=0))
    released = (
        select(Annotation.task_id).where(live).group_by(Annotation.task_id).having(accepted == 0)
    )
    held_by_task = select(RoundItem.image_id).where(
        RoundItem.task_id.is_not(None),
        RoundItem.task_id.not_in(released),
        RoundItem.task_id.not_in(select(DeletedTask.task_id)),
    )
    held_by_push = (
        select(RoundItem.image_id)
        .join(Round, Round.id == RoundItem.round_id)
        .where(Round.status == "pushing", RoundItem.task_id.is_(None))
    )
    return list(
        session.scalars(
            select(Image)
            .where(
                Image.label.is_(None),
                Image.unusable_reason.is_(None),
                Image.source != GOLD_SOURCE,  # gold images join rounds only through mix_gold
                Image.id.not_in(held_by_task),
                Image.id.not_in(held_by_push),
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
    chosen_ids: list[int] = []
    if pool:
        probs = head.predict_proba(stack(vectors, [image.id for image in pool]))
        scores = strategy(probs)
        chosen = rank_by_score(scores, k=request.k)
        _add_items(session, round_, pool, probs, scores, chosen, ctx.guide.label_names)
        chosen_ids = [pool[index].id for index in chosen.tolist()]
        session.flush()
        mix_gold(session, ctx, round_, head, strategy)
    after = {
        "strategy": request.strategy,
        "k": request.k,
        "model_version": model.id,
        "pool_size": len(pool),
        "image_ids": chosen_ids,  # in rank order
    }
    record(session, "round.selected", subject=("round", round_.id), after=after)
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
