"""Registering images and serving them to the annotator's browser."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import func, select

from service.api.deps import ContextDep, JobsDep, SessionDep
from service.api.routes.jobs import accepted
from service.api.schemas import ImageOut, ImagePage, JobAccepted, RegisterFolderRequest
from service.core.errors import NotFound, PayloadTooLarge
from service.core.orm import Image
from service.core.progress import Progress
from service.pool.registration import register_folder, register_upload, resolve_allowed

router = APIRouter(tags=["images"])


@router.post("/images/register", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
def register(body: RegisterFolderRequest, context: ContextDep, jobs: JobsDep) -> JobAccepted:
    """Register every image below a folder; unreadable files are skipped and listed."""
    folder = resolve_allowed(body.folder, context.settings.allowed_roots)
    if not folder.is_dir():
        raise NotFound(f"{body.folder} is not a folder")

    def work(progress: Progress) -> dict[str, object]:
        with context.sessions() as session:
            report = register_folder(
                session,
                folder,
                max_pixels=context.settings.max_image_pixels,
                progress=lambda done, total: progress(
                    done / max(total, 1), f"checked {done}/{total} files"
                ),
            )
            session.commit()
        return {
            "registered": report.registered,
            "already_known": report.already_known,
            "skipped": [asdict(s) for s in report.skipped],
        }

    return accepted(jobs.submit("register", {"folder": str(folder)}, work))


@router.post("/images/upload", response_model=ImageOut, status_code=status.HTTP_201_CREATED)
async def upload(file: UploadFile, context: ContextDep, session: SessionDep) -> ImageOut:
    """Register one uploaded image (stored once per content)."""
    limit = context.settings.max_upload_bytes
    content = await file.read(limit + 1)
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
    return image_out(image)


@router.get("/images", response_model=ImagePage)
def list_images(session: SessionDep, offset: int = 0, limit: int = 100) -> ImagePage:
    limit = max(1, min(limit, 1000))
    total = session.scalar(select(func.count()).select_from(Image)) or 0
    labeled = session.scalar(select(func.count()).where(Image.label.is_not(None))) or 0
    unusable = session.scalar(select(func.count()).where(Image.unusable_reason.is_not(None))) or 0
    rows = session.scalars(select(Image).order_by(Image.id).offset(max(offset, 0)).limit(limit))
    return ImagePage(
        total=total, labeled=labeled, unusable=unusable, items=[image_out(i) for i in rows]
    )


@router.get("/media/{image_id}")
def media(image_id: int, session: SessionDep) -> FileResponse:
    """The image file, for Label Studio's browser (CORS is set by the app)."""
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"image {image_id} does not exist")
    return FileResponse(image.path, headers={"Cache-Control": "private, max-age=3600"})


def image_out(image: Image) -> ImageOut:
    return ImageOut(
        id=image.id,
        path=image.path,
        width=image.width,
        height=image.height,
        source=image.source,
        label=image.label,
        label_source=image.label_source,
        unusable_reason=image.unusable_reason,
    )
