"""Known labels in, confirmed labels out."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.schemas import (
    ConfirmedLabelOut,
    ImportLabelsRequest,
    ImportLabelsResponse,
)
from service.core.orm import Image
from service.pool.labels import KnownLabel, export_labels, import_labels

router = APIRouter(tags=["labels"])


@router.post("/labels", response_model=ImportLabelsResponse)
def import_known(
    body: ImportLabelsRequest, context: ContextDep, session: SessionDep
) -> ImportLabelsResponse:
    """Store labels known beforehand (a seed set); the whole batch is refused on any bad entry."""
    items = [KnownLabel(item.image_id, item.label) for item in body.labels]
    result = import_labels(session, context.guide, items, source=body.source)
    return ImportLabelsResponse(imported=result.imported, kept_annotated=result.kept_annotated)


@router.get("/labels", response_model=Page[ConfirmedLabelOut])
def list_labels(
    session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ConfirmedLabelOut]:
    """Confirmed labels (seed, import or annotators'), by image id."""
    query = select(Image).where(Image.label.is_not(None))
    rows, next_cursor = page_rows(session, query, Image.id, limit=limit, cursor=cursor)
    return Page(items=[label_out(image) for image in rows], next_cursor=next_cursor)


@router.get(
    "/labels/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "every confirmed label"}},
)
def export(session: SessionDep) -> Response:
    """Every confirmed label as one CSV file (image_id, path, label, source, labeled_at)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image_id", "path", "label", "source", "labeled_at"])
    for label in export_labels(session):
        writer.writerow(
            [
                label.image_id,
                label.path,
                label.label,
                label.source,
                label.labeled_at.isoformat() if label.labeled_at else "",
            ]
        )
    return Response(buffer.getvalue(), media_type="text/csv")


def label_out(image: Image) -> ConfirmedLabelOut:
    return ConfirmedLabelOut(
        image_id=image.id,
        path=image.path,
        label=str(image.label),
        source=str(image.label_source),
        labeled_at=image.labeled_at,
    )
