"""Known labels in, confirmed labels out."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.schemas import (
    ConfirmedLabelOut,
    ImportLabelsRequest,
    ImportLabelsResponse,
)
from service.auth.roles import Role, requires
from service.core.orm import Image
from service.pool.labels import KnownLabel, export_labels, import_labels

router = APIRouter(tags=["labels"])


@router.post("/labels", response_model=ImportLabelsResponse)
@requires(Role.pipeline)
def import_known(
    body: ImportLabelsRequest, context: ContextDep, session: SessionDep
) -> ImportLabelsResponse:
    """Store labels known beforehand (a seed set); the whole batch is refused on any bad entry."""
    items = [KnownLabel(item.image_id, item.label) for item in body.labels]
    result = import_labels(session, context.guide, items, source=body.source)
    return ImportLabelsResponse(imported=result.imported, kept_annotated=result.kept_annotated)


@router.get("/labels", response_model=Page[ConfirmedLabelOut])
@requires(Role.pipeline, Role.reviewer)
def list_labels(
    session: SessionDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[ConfirmedLabelOut]:
    """Confirmed labels (seed, import or annotators'), by image id."""
    query = select(Image).where(Image.label.is_not(None))
    rows, next_cursor = page_rows(session, query, Image.id, limit=limit, cursor=cursor)
    return Page(items=[label_out(image) for image in rows], next_cursor=next_cursor)


ExportFormat = Literal["csv", "jsonl"]
EXPORT_COLUMNS = ("image_id", "path", "label", "source", "labeled_at")
EXPORT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


@router.get(
    "/labels/export",
    response_class=Response,
    responses={
        200: {
            "content": {media_type: {} for media_type in EXPORT_TYPES.values()},
            "description": "every confirmed label",
        }
    },
)
@requires(Role.pipeline, Role.reviewer)
def export(
    session: SessionDep,
    format: Annotated[
        ExportFormat, Query(description="`csv` (with a header row) or `jsonl` (one object a line)")
    ] = "csv",
) -> Response:
    """Every confirmed label as one file: image_id, path, label, source, labeled_at."""
    rows = [
        (
            label.image_id,
            label.path,
            label.label,
            label.source,
            label.labeled_at.isoformat() if label.labeled_at else "",
        )
        for label in export_labels(session)
    ]
    if format == "jsonl":
        lines = (json.dumps(dict(zip(EXPORT_COLUMNS, row, strict=True))) + "\n" for row in rows)
        return Response("".join(lines), media_type=EXPORT_TYPES["jsonl"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type=EXPORT_TYPES["csv"])


def label_out(image: Image) -> ConfirmedLabelOut:
    return ConfirmedLabelOut(
        image_id=image.id,
        path=image.path,
        label=str(image.label),
        source=str(image.label_source),
        labeled_at=image.labeled_at,
    )
