"""Images for the annotator's browser, through signed and expiring URLs (no API key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from service.api.deps import ContextDep, SessionDep
from service.core.errors import NotFound
from service.core.orm import Image
from service.pool.registration import servable_path

router = APIRouter(tags=["media"])

MAX_ID = 2**63 - 1


@router.get(
    "/media/{image_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/*": {}}, "description": "the image file"},
        403: {"description": "`invalid_signature` or `expired_signature`"},
        404: {"description": "`not_found`: no such image"},
    },
)
def media(
    image_id: int,
    exp: Annotated[int, Query(ge=0, le=MAX_ID, description="expiry, unix seconds")],
    sig: Annotated[str, Query(max_length=128, description="HMAC-SHA256 of id and expiry")],
    context: ContextDep,
    session: SessionDep,
) -> FileResponse:
    """The image file, if the URL's signature is valid and unexpired (as pushed in tasks)."""
    context.media.verify(image_id, exp, sig)
    image = session.get(Image, image_id) if 0 < image_id <= MAX_ID else None
    if image is None:
        raise NotFound(f"image {image_id} does not exist")
    path = servable_path(image, context.settings.allowed_roots, context.settings.upload_dir)
    return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})
