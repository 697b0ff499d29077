"""The annotations quality checks read: the latest live accepted answer per (task, annotator).

Units are Label Studio tasks (one image each) and annotators are Label Studio user ids;
labels are class indices in the guide's order. Only annotations stored under the guide
version in force count: a report speaks for one guide version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from guides import Guide
from quality.ratings import MISSING, RatingTable, table_from_triples
from service.core.orm import Annotation
from service.quality.gold import gold_answers


@dataclass(frozen=True)
class Answer:
    """One annotator's current answer on one task, with the suggestion they were shown."""

    task_id: int
    image_id: int
    annotator: int
    label: int
    shown: int  # class index of the suggestion on screen, MISSING when none
    shown_version: str | None
    gold: int  # expected class index on a gold image, MISSING otherwise
    at: datetime | None


def latest_answers(
    session: Session, guide: Guide, *, image_ids: Iterable[int] | None = None
) -> list[Answer]:
    """Current answers, in (task, annotator) order; optionally only on `image_ids`."""
    query = (
        select(Annotation)
        .where(
            Annotation.status == "accepted",
            Annotation.deleted.is_(False),
            Annotation.annotator.is_not(None),
            Annotation.image_id.is_not(None),
            Annotation.guide_version == str(guide.version),
        )
        .order_by(Annotation.studio_updated_at, Annotation.studio_annotation_id)
    )
    if image_ids is not None:
        query = query.where(Annotation.image_id.in_(sorted(set(image_ids))))
    gold = {
        image: guide.label_index(label)
        for image, label in gold_answers(session).items()
        if guide.has_label(label)
    }
    latest: dict[tuple[int, int], Answer] = {}
    for row in session.scalars(query):
        if row.label is None or not guide.has_label(row.label):
            continue
        shown = row.shown_label
        key = (row.task_id, int(row.annotator or 0))
        latest[key] = Answer(
            task_id=row.task_id,
            image_id=int(row.image_id or 0),
            annotator=key[1],
            label=guide.label_index(row.label),
            shown=guide.label_index(shown) if shown and guide.has_label(shown) else MISSING,
            shown_version=row.shown_model_version,
            gold=gold.get(int(row.image_id or 0), MISSING),
            at=row.studio_updated_at,
        )
    return [latest[key] for key in sorted(latest)]


def rating_table(answers: list[Answer], n_classes: int) -> RatingTable:
    """The ratings matrix ``(n_tasks, n_annotators)`` of these answers."""
    return table_from_triples(
        ((a.task_id, a.annotator, a.label) for a in answers), n_classes=n_classes
    )


def unit_gold(answers: list[Answer], table: RatingTable) -> np.ndarray:
    """Expected class per unit of `table`, ``(n_units,)``, MISSING off gold tasks."""
    by_task = {a.task_id: a.gold for a in answers}
    return np.array([by_task[task] for task in table.unit_ids], dtype=np.int64)
