"""An image's label from its annotations: the majority of the live accepted ones."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import record
from service.core.orm import Annotation, Image, utcnow
from service.studio.intake import chunked


def resolve_labels(session: Session, image_ids: Iterable[int]) -> int:
    """Set each image's label to the majority of its live accepted annotations.

    The latest annotation breaks ties; an image whose annotations are all gone loses the
    label they gave it. Returns how many images carry an annotation label afterwards.
    """
    labeled = 0
    for batch in chunked(sorted(set(image_ids))):
        images = session.scalars(select(Image).where(Image.id.in_(batch)))
        accepted: dict[int, list[str]] = defaultdict(list)
        rows = session.execute(
            select(Annotation.image_id, Annotation.label)
            .where(
                Annotation.image_id.in_(batch),
                Annotation.status == "accepted",
                Annotation.deleted.is_(False),
            )
            .order_by(Annotation.studio_updated_at, Annotation.studio_annotation_id)
        )
        for image_id, label in rows:
            accepted[image_id].append(label)
        for image in images:
            before = image.label
            labeled += _set_label(image, accepted.get(image.id, []))
            if image.label != before:
                record(
                    session,
                    "label.changed",
                    actor="annotators",
                    subject=("image", image.id),
                    before={"label": before},
                    after={"label": image.label, "source": image.label_source},
                )
    session.flush()
    return labeled


def _set_label(image: Image, labels: list[str]) -> int:
    if not labels:
        if image.label_source == "annotation":
            image.label, image.label_source, image.labeled_at = None, None, utcnow()
        return 0
    votes = Counter(labels)
    best = max(votes.values())
    label = next(name for name in reversed(labels) if votes[name] == best)
    if image.label != label or image.label_source != "annotation":
        image.label, image.label_source, image.labeled_at = label, "annotation", utcnow()
    return 1
