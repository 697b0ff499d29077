"""Gold tasks mixed into a round: the same kind of item as any other, at a random rank.

Gold images are registered with `Image.source == "gold"` (their answers live in the quality
tables only). A round of `k` chosen images gets `round(k * share / (1 - share))` gold images,
so that gold makes up `share` of its tasks; the least used gold images go first. Each gold
item carries the model's own suggestion and score, so its task data and meta look like the
others'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.head import TrainedHead
from service.context import ServiceContext
from service.core.orm import Image, Round, RoundItem
from service.pool.embeddings import ensure_embeddings, stack

GOLD_SOURCE = "gold"


def gold_count(k: int, share: float) -> int:
    """Gold items for a round of `k` chosen images, so that gold is `share` of its tasks."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"expected a gold share in [0, 1), got {share}")
    return round(k * share / (1.0 - share)) if k > 0 else 0


def least_used_gold(session: Session, count: int) -> list[Image]:
    """Up to `count` usable gold images, those in the fewest rounds first (then by id)."""
    uses = (
        select(RoundItem.image_id, func.count().label("uses"))
        .group_by(RoundItem.image_id)
        .subquery()
    )
    query = (
        select(Image)
        .outerjoin(uses, uses.c.image_id == Image.id)
        .where(Image.source == GOLD_SOURCE, Image.unusable_reason.is_(None))
        .order_by(func.coalesce(uses.c.uses, 0), Image.id)
        .limit(count)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class GoldPick:
    """The gold images a round gets, with their embeddings."""

    images: list[Image]
    vectors: dict[int, np.ndarray]


def pick_gold(session: Session, ctx: ServiceContext, n_items: int) -> GoldPick:
    """The least used gold images for a round of `n_items`, embedded.

    Embedding missing ones commits them: call it before the round's first write, so the
    round's write unit never holds the write lock while the backbone runs.
    """
    gold = least_used_gold(session, gold_count(n_items, ctx.settings.quality.gold_share))
    vectors = ensure_embeddings(session, ctx.runtime, gold).vectors if gold else {}
    return GoldPick([image for image in gold if image.id in vectors], vectors)


def mix_gold(
    session: Session,
    ctx: ServiceContext,
    round_: Round,
    head: TrainedHead,
    strategy: Callable[[np.ndarray], np.ndarray],
    picked: GoldPick | None = None,
) -> list[int]:
    """Add gold items to a selected round (flush only) and shuffle every rank; returns their ids.

    `picked`: the round's gold from `pick_gold`, or None to pick it here.
    """
    items = list(session.scalars(select(RoundItem).where(RoundItem.round_id == round_.id)))
    picked = picked if picked is not None else pick_gold(session, ctx, len(items))
    gold, vectors = picked.images, picked.vectors
    if not gold:
        return []
    probs = head.predict_proba(stack(vectors, [image.id for image in gold]))
    scores = strategy(probs)
    names = ctx.guide.label_names
    added = []
    for image, row, score in zip(gold, probs, scores.tolist(), strict=True):
        top = int(np.argmax(row))
        added.append(
            RoundItem(
                round_id=round_.id,
                image_id=image.id,
                rank=0,
                score=float(score),
                predicted_label=names[top],
                predicted_probability=float(row[top]),
                model_version=round_.model_version,
            )
        )
    session.add_all(added)
    _interleave(sorted(items, key=lambda item: item.rank), added, seed=round_.id)
    session.flush()
    return [image.id for image in gold]


def _interleave(ordinary: list[RoundItem], gold: list[RoundItem], *, seed: int) -> None:
    """Rank gold items at random positions; ordinary items keep their relative order."""
    total = len(ordinary) + len(gold)
    slots = set(np.random.default_rng(seed).choice(total, size=len(gold), replace=False).tolist())
    queue, extra = iter(ordinary), iter(gold)
    for rank in range(1, total + 1):
        item = next(extra) if rank - 1 in slots else next(queue)
        item.rank = rank
