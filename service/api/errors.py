"""The JSON error body every failure answers with, installed on the app in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from guides import GuideError
from labeling.errors import LabelingError
from models.errors import ModelError
from service.core.errors import DatabaseBusy, ServiceError, classify, is_busy


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return body


def error_headers(status: int, code: str) -> dict[str, str] | None:
    """Headers an error answer carries: how to authenticate, or when to try again."""
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if code == DatabaseBusy.code:
        return {"Retry-After": str(DatabaseBusy.retry_after_s)}
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers JSON `{"error": {"code", "message", "details"?}}`, never a traceback."""

    async def known(_request: Request, exc: Exception) -> JSONResponse:
        status, code, message, details = classify(exc)
        headers = error_headers(status, code)
        return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)

    async def database(request: Request, exc: Exception) -> JSONResponse:
        if not is_busy(exc):
            raise exc  # any other database failure is a 500, logged by the outer handler
        return await known(request, exc)

    async def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "the request is invalid", details), status_code=422
        )

    async def http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        codes[413] = "payload_too_large"
        code = codes.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    for exc_type in (ServiceError, GuideError, LabelingError, ModelError, Exception):
        app.add_exception_handler(exc_type, known)
    for exc_type in (OperationalError, PoolTimeout):  # a busy database: 503, not a 500
        app.add_exception_handler(exc_type, database)
    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http)  # type: ignore[arg-type]
