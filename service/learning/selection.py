"""Choosing a round: a batch-selection strategy picks from the unlabeled pool; it is recorded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from models.selection import select_batch
from service.audit import record
from service.context import ServiceContext
from service.core.errors import NoModel
from service.core.orm import Annotation, DeletedTask, Image, Round, RoundItem
from service.core.progress import Progress, no_progress, scaled
from service.learning.gold import mix_gold, pick_gold
from service.learning.selection_inputs import RoundInputs, round_inputs
from service.learning.strategies import display_score, resolve_strategy
from service.learning.training import (
    current_model,
    labeled_images,
    needs_training,
    train_model,
    unlabeled_pool,
)
from service.pool.embeddings import embed_missing, embedding_store


@dataclass(frozen=True)
class RoundRequest:
    """`strategy`: a `models.selection` name (None: the guide's, else the default); `seed`:
    None draws one; `class_balanced`: re-pick the batch toward rarely labeled classes."""

    k: int = 20
    strategy: str | None = None
    retrain: bool = True
    seed: int | None = None
    class_balanced: bool = False


def candidate_images(session: Session) -> list[Image]:
    """Usable images with no confirmed label that no live task holds.

    A task holds its image while it waits for annotators or has an accepted annotation.
    It lets the image go back to the pool when it was deleted, or when every live
    annotation on it is cancelled (skipped) or rejected. A round that was selected but
    never pushed holds nothing; one cut off mid-push (`pushing`) or held back in part by the
    guide's WIP limit (`releasing`) holds its images, since resuming it matches them to the
    tasks already imported.
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
        .where(Round.status.in_(("pushing", "releasing")), RoundItem.task_id.is_(None))
    )
    return list(
        session.scalars(
            select(Image)
            .where(
                *unlabeled_pool(),  # gold images join rounds only through mix_gold
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
    """Choose the round's batch with its strategy and record it (not yet pushed).

    The strategy gets the pool's probabilities under the active head, the pool's and the
    labeled images' embeddings (from the store: the backbone runs only on images never
    embedded), `k` and the seed stored on the round; items keep its order as their rank.
    """
    strategy = resolve_strategy(request.strategy, ctx.guide.selection)
    model = current_model(session, ctx)
    retrain = request.retrain and needs_training(session, model)
    if model is None and not retrain:
        raise NoModel("no trained model yet: import seed labels, then train or run with retrain")
    images = candidate_images(session)
    labeled = labeled_images(session, ctx.guide.label_names)
    # The pool is embedded first: a semi-supervised retrain learns from its embeddings too.
    run = embed_missing(session, ctx.runtime, images + labeled, progress=scaled(progress, 0.0, 0.6))
    if retrain:
        model = train_model(session, ctx, progress=scaled(progress, 0.6, 0.8))
    if model is None:
        raise NoModel("no trained model yet: import seed labels, then train or run with retrain")
    head = ctx.runtime.head(model.id, model.checkpoint_path)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    store = embedding_store(session, ctx.runtime)
    labels = np.array([ctx.guide.label_index(str(i.label)) for i in labeled], dtype=np.int64)
    chosen = (
        round_inputs(store, head, strategy, images, labeled, labels, k=request.k, seed=seed)
        if store is not None
        else None
    )
    # everything is computed before the round's first write: its unit holds the lock briefly
    picks = scores = None
    if chosen is not None:
        picks = select_batch(strategy, chosen.inputs, class_balanced=request.class_balanced)
        scores = display_score(strategy)(chosen.inputs.probs)
    gold = pick_gold(session, ctx, len(picks)) if picks is not None else None
    round_ = Round(
        strategy=strategy,
        k=request.k,
        seed=seed,
        class_balanced=request.class_balanced,
        model_version=model.id,
        pool_size=chosen.pool_size if chosen is not None else 0,
        embedded=run.computed,
        embedding_rate=round(run.images_per_second, 2),
    )
    session.add(round_)
    session.flush()
    chosen_ids: list[int] = []
    if chosen is not None and picks is not None and scores is not None:
        _add_items(session, round_, chosen, scores, picks, ctx.guide.label_names)
        chosen_ids = chosen.image_ids[picks].tolist()
        session.flush()
        mix_gold(session, ctx, round_, head, display_score(strategy), gold)
    after = {
        "strategy": strategy,
        "k": request.k,
        "seed": seed,
        "class_balanced": request.class_balanced,
        "model_version": model.id,
        "pool_size": round_.pool_size,
        "image_ids": chosen_ids,  # in the strategy's order
    }
    record(session, "round.selected", subject=("round", round_.id), after=after)
    session.commit()
    progress(0.9, f"selected {len(chosen_ids)} of {round_.pool_size} images with {strategy}")
    return round_


def _add_items(
    session: Session,
    round_: Round,
    chosen: RoundInputs,
    scores: np.ndarray,
    picks: np.ndarray,
    class_names: list[str],
) -> None:
    """One item per pick, ranked in the strategy's order; `scores: (n,)` for display."""
    probs = chosen.inputs.probs
    for rank, index in enumerate(picks.tolist(), start=1):
        top = int(np.argmax(probs[index]))
        session.add(
            RoundItem(
                round_id=round_.id,
                image_id=int(chosen.image_ids[index]),
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
