"""Service errors and the JSON error body every failure answers with."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from guides import GuideError
from labeling.errors import LabelingError, LabelStudioRejected, LabelStudioUnavailable
from models.errors import ModelError


class ServiceError(Exception):
    """A failure with an HTTP status, a stable code and a message for people."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ServiceError):
    status_code, code = 404, "not_found"


class PathNotAllowed(ServiceError):
    status_code, code = 403, "path_not_allowed"


class PathNotFound(ServiceError):
    status_code, code = 404, "path_not_found"


class UnknownLabel(ServiceError):
    status_code, code = 422, "unknown_label"


class UnknownStrategy(ServiceError):
    status_code, code = 422, "unknown_strategy"


class NotEnoughLabels(ServiceError):
    status_code, code = 409, "not_enough_labels"


class NoModel(ServiceError):
    status_code, code = 409, "no_model"


class InvalidImage(ServiceError):
    status_code, code = 422, "invalid_image"


class PayloadTooLarge(ServiceError):
    status_code, code = 413, "payload_too_large"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return body


def _status_for(exc: Exception) -> tuple[int, str, str, Any]:
    if isinstance(exc, ServiceError):
        return exc.status_code, exc.code, exc.message, exc.details
    if isinstance(exc, GuideError):
        problems = [{"location": p.location, "message": p.message} for p in exc.problems]
        return 422, exc.code, "the labeling guide is invalid", problems
    if isinstance(exc, LabelStudioUnavailable):
        return 503, exc.code, str(exc), None
    if isinstance(exc, LabelStudioRejected):
        return 502, exc.code, str(exc), None
    if isinstance(exc, LabelingError):
        return 422, exc.code, str(exc), None
    if isinstance(exc, ModelError):
        return 422, exc.code, str(exc), None
    return 500, "internal_error", "an unexpected error occurred; see the service log", None


def describe_exception(exc: Exception) -> tuple[str, str]:
    """(code, message) of any exception, as jobs record it."""
    _, code, message, _ = _status_for(exc)
    return code, message


def install_error_handlers(app: FastAPI) -> None:
    """Every error answers JSON `{"error": {"code", "message", "details"?}}`, never a traceback."""

    async def known(_request: Request, exc: Exception) -> JSONResponse:
        status, code, message, details = _status_for(exc)
        return JSONResponse(error_body(code, message, details), status_code=status)

    async def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "the request is invalid", details), status_code=422
        )

    async def http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    for exc_type in (ServiceError, GuideError, LabelingError, ModelError, Exception):
        app.add_exception_handler(exc_type, known)
    app.add_exception_handler(RequestValidationError, validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http)  # type: ignore[arg-type]
