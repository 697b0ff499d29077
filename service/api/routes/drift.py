"""Drift: a pool drift report on demand, and a pipeline's batch checked before it joins.

`POST /v1/drift/check` takes `{"image_ids": [...]}` or `{"folder": "..."}` as JSON, or
multipart `files`. Up to `quality.drift_sync_max_images` images answer the verdict at once;
larger batches answer 202 with a job whose result is the verdict.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile

from service.api.deps import ContextDep, SessionDep
from service.api.routes.jobs import accepted
from service.api.routes.predictions import UnsupportedBody
from service.api.schemas import JobAccepted, RowId
from service.auth.roles import Role, requires
from service.context import ServiceContext
from service.core.errors import PayloadTooLarge, ServiceError
from service.jobs.queue import enqueue
from service.pool.registration import resolve_allowed
from service.quality.drift.batch import (
    MAX_BATCH,
    check_files,
    check_ids,
    check_size,
    folder_files,
)
from service.quality.drift.jobs import DRIFT_BATCH_KIND, DRIFT_REPORT_KIND, DRIFT_SCOPE
from service.quality.drift.schemas import BatchVerdict, DriftReport

router = APIRouter(tags=["drift"])
MAX_UPLOADS = 1000


class DriftBatchRequest(BaseModel):
    """Registered `image_ids`, or a `folder` under the allowed roots: exactly one."""

    model_config = ConfigDict(extra="forbid")
    image_ids: list[RowId] | None = Field(default=None, max_length=MAX_BATCH)
    folder: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _one_source(self) -> DriftBatchRequest:
        if (self.image_ids is None) == (self.folder is None):
            raise ValueError("send either image_ids or folder")
        return self


REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DriftBatchRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            },
        },
    }
}


@router.post("/reports/drift", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
@requires(Role.pipeline)
def run_drift(session: SessionDep) -> JobAccepted:
    """A drift report of what arrived since the last one, as a job (its result names it)."""
    job = enqueue(session, DRIFT_REPORT_KIND, {"trigger": "on_demand"}, scope=DRIFT_SCOPE)
    session.commit()
    return accepted(job.id)


@router.get("/drift/schema")
@requires(Role.pipeline)
def drift_schema() -> dict[str, Any]:
    """The JSON schema of drift reports (their `schema_version` names its version)."""
    return DriftReport.model_json_schema()


@router.post(
    "/drift/check",
    response_model=BatchVerdict,
    responses={202: {"model": JobAccepted}},
    openapi_extra=REQUEST_BODY,
)
@requires(Role.pipeline)
async def check(request: Request, context: ContextDep) -> Any:
    """Drift verdict on a batch before it joins the pool: at once, or a job when large."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sync_max = context.settings.quality.drift_sync_max_images
    if kind == "application/json":
        body = _body(await request.body())
        if body.image_ids is not None:
            check_size(len(body.image_ids))
            if len(body.image_ids) > sync_max:
                return _job(context, {"image_ids": list(body.image_ids)})
            return await run_in_threadpool(check_ids, context, body.image_ids)
        folder = resolve_allowed(str(body.folder), context.settings.allowed_roots)
        files = folder_files(folder) if folder.is_dir() else [folder]
        check_size(len(files))
        if len(files) > sync_max:
            return _job(context, {"folder": str(folder)})
        names = [str(p.relative_to(folder)) if p != folder else p.name for p in files]
        return await run_in_threadpool(check_files, context, files, names)
    if kind == "multipart/form-data":
        return await _uploads(request, context, sync_max)
    raise UnsupportedBody('send JSON `{"image_ids": [...]}` or `{"folder": ...}`, or multipart')


def _body(raw: bytes) -> DriftBatchRequest:
    try:
        return DriftBatchRequest.model_validate_json(raw)
    except ValidationError as err:
        details = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in err.errors()
        ]
        raise InvalidBatchRequest("the request is invalid", details=details) from err


class InvalidBatchRequest(ServiceError):
    status_code, code = 422, "invalid_request"


def _job(context: ServiceContext, params: dict[str, Any]) -> JSONResponse:
    with context.sessions() as session:
        job = enqueue(session, DRIFT_BATCH_KIND, params, scope=DRIFT_SCOPE, key=uuid.uuid4().hex)
        session.commit()
        body = accepted(job.id)
    return JSONResponse(body.model_dump(), status_code=status.HTTP_202_ACCEPTED)


async def _uploads(request: Request, context: ServiceContext, sync_max: int) -> Any:
    """Uploads saved to a folder of the data dir, checked there (the folder is removed)."""
    limit = context.settings.max_upload_bytes
    folder = context.settings.data_dir / "drift-batches" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    count = 0
    async with request.form(max_files=MAX_UPLOADS, max_fields=MAX_UPLOADS) as form:
        for upload in form.getlist("files"):
            if not isinstance(upload, UploadFile):
                continue
            data = await upload.read(limit + 1)
            if len(data) > limit:
                _remove(folder)
                raise PayloadTooLarge(f"uploads are limited to {limit} bytes each")
            name = Path(upload.filename or "upload").name or "upload"
            (folder / f"{count:05d}-{name}").write_bytes(data)
            count += 1
    if count == 0:
        _remove(folder)
        check_size(0)
    if count > sync_max:
        return _job(context, {"uploads": str(folder)})
    try:
        files = folder_files(folder)
        names = [p.name.split("-", 1)[-1] for p in files]
        return await run_in_threadpool(check_files, context, files, names)
    finally:
        _remove(folder)


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
