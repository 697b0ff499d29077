"""Registering images and listing them, each with a signed URL of its file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, UploadFile, status
from sqlalchemy import func, select

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.api.routes.jobs import accepted
from service.api.schemas import ImageCounts, ImageOut, JobAccepted, RegisterFolderRequest
from service.auth.roles import Role, requires
from service.auth.signing import MediaSigner
from service.core.errors import NotFound, PayloadTooLarge
from service.core.orm import Image
from service.jobs.queue import enqueue
from service.pool.jobs import POOL_SCOPE, folder_key
from service.pool.registration import register_upload, resolve_allowed, retry_image

router = APIRouter(tags=["images"])


@router.post("/images/register", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
@requires(Role.pipeline)
def register(body: RegisterFolderRequest, context: ContextDep, session: SessionDep) -> JobAccepted:
    """Register every image below a folder under an allowed root, as a job.

    Unreadable files are skipped and listed in the job's result with a code and a reason.
    """
    folder = resolve_allowed(body.folder, context.settings.allowed_roots)
    if not folder.is_dir():
        raise NotFound(f"{body.folder} is not a folder")
    job = enqueue(
        session, "register", {"folder": str(folder)}, scope=POOL_SCOPE, key=folder_key(folder)
    )
    session.commit()
    return accepted(job.id)


@router.post("/images/upload", response_model=ImageOut, status_code=status.HTTP_201_CREATED)
@requires(Role.pipeline)
def upload(file: UploadFile, context: ContextDep, session: SessionDep) -> ImageOut:
    """Register one uploaded image (multipart `file`), stored once per content.

    A plain `def`: decoding and hashing run in the thread pool, never on the event loop.
    """
    limit = context.settings.max_upload_bytes
    content = file.file.read(limit + 1)
    if len(content) > limit:
        raise PayloadTooLarge(f"uploads are limited to {limit} bytes")
    image = register_upload(
        session,
        content,
        file.filename or "upload",
        context.settings.upload_dir,
        max_pixels=context.settings.max_image_pixels,
    )
    session.commit()
    return image_out(image, context.media)


@router.get("/images", response_model=Page[ImageOut])
@requires(Role.pipeline)
def list_images(
    context: ContextDep,
    session: SessionDep,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[ImageOut]:
    """Registered images by id, each with a signed URL of its file."""
    rows, next_cursor = page_rows(session, select(Image), Image.id, limit=limit, cursor=cursor)
    return Page(items=[image_out(i, context.media) for i in rows], next_cursor=next_cursor)


@router.post("/images/{image_id}/retry", response_model=ImageOut)
@requires(Role.pipeline)
def retry(
    image_id: Annotated[int, Path(ge=1, le=2**63 - 1)], context: ContextDep, session: SessionDep
) -> ImageOut:
    """Check an image marked unusable again: if its file now decodes, it returns to the pool.

    422 `invalid_image` (with the new reason stored) when it still fails to decode.
    """
    image = retry_image(session, image_id, max_pixels=context.settings.max_image_pixels)
    return image_out(image, context.media)


@router.get("/images/counts", response_model=ImageCounts)
@requires(Role.pipeline)
def count_images(session: SessionDep) -> ImageCounts:
    """How many images are registered, labeled and unusable."""
    return ImageCounts(
        total=session.scalar(select(func.count()).select_from(Image)) or 0,
        labeled=session.scalar(select(func.count()).where(Image.label.is_not(None))) or 0,
        unusable=session.scalar(select(func.count()).where(Image.unusable_reason.is_not(None)))
        or 0,
    )


def image_out(image: Image, signer: MediaSigner) -> ImageOut:
    return ImageOut(
        id=image.id,
        path=image.path,
        width=image.width,
        height=image.height,
        source=image.source,
        label=image.label,
        label_source=image.label_source,
        unusable_reason=image.unusable_reason,
        media_url=signer.url(image.id),
    )
