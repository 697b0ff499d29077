"""Predictions for pipelines: image ids (JSON) or uploaded files (multipart) in."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from service.api.deps import ContextDep
from service.api.schemas import PredictByIdsRequest, PredictionOut, PredictionsOut
from service.auth.roles import Role, requires
from service.context import ServiceContext
from service.core.errors import PayloadTooLarge, ServiceError
from service.learning.predictions import Predictions, predict_files, predict_images

router = APIRouter(tags=["predictions"])
MAX_FILES = 64

REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictByIdsRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_FILES,
                        }
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


class UnsupportedBody(ServiceError):
    status_code, code = 415, "unsupported_media_type"


@router.post("/predictions", response_model=PredictionsOut, openapi_extra=REQUEST_BODY)
@requires(Role.pipeline)
async def predict(request: Request, context: ContextDep) -> PredictionsOut:
    """Label, class probabilities and uncertainty per image, from the active model version.

    Send `{"image_ids": [...]}` as JSON for registered images, or several `files` as
    multipart/form-data for images that are not registered (they are not kept). Decoding and
    inference run in the thread pool, never on the event loop.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        body = _ids_body(await request.body())
        result = await run_in_threadpool(_predict_ids, context, body.image_ids)
        return _out(result, ids=body.image_ids)
    if kind == "multipart/form-data":
        files = await _uploads(request, context.settings.max_upload_bytes)
        result = await run_in_threadpool(_predict_files, context, files)
        return _out(result, names=[name for name, _ in files])
    raise UnsupportedBody('send JSON `{"image_ids": [...]}` or multipart `files`')


def _ids_body(raw: bytes) -> PredictByIdsRequest:
    try:
        return PredictByIdsRequest.model_validate_json(raw)
    except ValidationError as err:
        details = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in err.errors()
        ]
        raise ServiceError("the request is invalid", details=details) from err


async def _uploads(request: Request, limit: int) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:  # closes files
        for upload in form.getlist("files"):
            if not isinstance(upload, UploadFile):
                continue
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise PayloadTooLarge(f"uploads are limited to {limit} bytes each")
            files.append((upload.filename or "upload", data))
    if not files:
        raise ServiceError("multipart predictions need one or more `files`")
    return files


def _predict_ids(context: ServiceContext, image_ids: list[int]) -> Predictions:
    with context.sessions() as session:
        return predict_images(session, context, image_ids)


def _predict_files(context: ServiceContext, files: list[tuple[str, bytes]]) -> Predictions:
    with context.sessions() as session:
        return predict_files(session, context, files)


def _out(
    result: Predictions, *, ids: list[int] | None = None, names: list[str] | None = None
) -> PredictionsOut:
    items = [
        PredictionOut(
            image_id=ids[n] if ids else None,
            filename=names[n] if names else None,
            label=p.label,
            probabilities=p.probabilities,
            uncertainty=p.uncertainty,
            model_version=result.model_version,
        )
        for n, p in enumerate(result.items)
    ]
    return PredictionsOut(model_version=result.model_version, strategy=result.strategy, items=items)
