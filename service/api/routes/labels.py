"""Known labels in, confirmed labels out, annotations synced from Label Studio."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response

from service.api.deps import ContextDep, SessionDep
from service.api.schemas import (
    ConfirmedLabelOut,
    ImportLabelsRequest,
    ImportLabelsResponse,
    SyncOut,
)
from service.pool.labels import KnownLabel, export_labels, import_labels
from service.studio.sync import sync_annotations

router = APIRouter(tags=["labels"])


@router.post("/labels", response_model=ImportLabelsResponse)
def import_known(
    body: ImportLabelsRequest, context: ContextDep, session: SessionDep
) -> ImportLabelsResponse:
    """Store labels known beforehand (a seed set); the whole batch is refused on any bad entry."""
    items = [KnownLabel(item.image_id, item.label) for item in body.labels]
    result = import_labels(session, context.guide, items, source=body.source)
    return ImportLabelsResponse(imported=result.imported, kept_annotated=result.kept_annotated)


@router.get("/labels/export", response_model=list[ConfirmedLabelOut])
def export(session: SessionDep, format: Literal["json", "csv"] = "json") -> object:
    labels = export_labels(session)
    if format == "json":
        return [ConfirmedLabelOut(**asdict(label)) for label in labels]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image_id", "path", "label", "source", "labeled_at"])
    for label in labels:
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


@router.post("/annotations/sync", response_model=SyncOut)
def sync(context: ContextDep) -> SyncOut:
    """Read every annotation of the project back; safe to repeat, nothing is lost or doubled."""
    report = sync_annotations(context)
    return SyncOut(**asdict(report))
