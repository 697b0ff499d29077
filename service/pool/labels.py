"""Confirmed labels: importing known ones (a seed set) and exporting all of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from guides import Guide
from service.audit import record
from service.core.errors import NotFound, UnknownLabel
from service.core.orm import Image, utcnow


@dataclass(frozen=True)
class KnownLabel:
    image_id: int
    label: str


@dataclass(frozen=True)
class ConfirmedLabel:
    image_id: int
    path: str
    label: str
    source: str
    labeled_at: datetime | None


@dataclass(frozen=True)
class ImportResult:
    imported: int
    kept_annotated: list[int]  # images whose label came from annotators: never overwritten


def import_labels(
    session: Session, guide: Guide, labels: Sequence[KnownLabel], *, source: str = "seed"
) -> ImportResult:
    """Store labels that are already known; all or nothing: one bad entry rejects the batch.

    A label confirmed by annotators wins over an imported one, so importing a seed set again
    never undoes their work.
    """
    unknown = sorted({item.label for item in labels if not guide.has_label(item.label)})
    if unknown:
        raise UnknownLabel(
            f"labels not in the guide: {', '.join(unknown)}",
            details={"unknown": unknown, "allowed": guide.label_names},
        )
    images = {
        image.id: image
        for image in session.scalars(
            select(Image).where(Image.id.in_([item.image_id for item in labels]))
        )
    }
    missing = sorted({item.image_id for item in labels} - images.keys())
    if missing:
        raise NotFound(
            f"{len(missing)} image ids are not registered", details={"missing": missing[:50]}
        )
    now, imported, kept = utcnow(), 0, []
    before: dict[int, str | None] = {}
    for item in labels:
        image = images[item.image_id]
        if image.label_source == "annotation":
            kept.append(image.id)
            continue
        if image.label != item.label:
            before.setdefault(image.id, image.label)
        image.label, image.label_source, image.labeled_at = item.label, source, now
        imported += 1
    if before:  # one entry per import: the labels it changed, old and new
        after = {str(i): images[i].label for i in before}
        record(
            session,
            "label.changed",
            subject=("label_import", source),
            before={str(i): label for i, label in before.items()},
            after=after,
        )
    session.commit()
    return ImportResult(imported, kept)


def export_labels(session: Session) -> list[ConfirmedLabel]:
    """Every image with a confirmed label, in image order."""
    rows = session.scalars(select(Image).where(Image.label.is_not(None)).order_by(Image.id))
    return [
        ConfirmedLabel(i.id, i.path, str(i.label), str(i.label_source), i.labeled_at) for i in rows
    ]
