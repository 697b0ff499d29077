"""Service errors with stable codes, and how any exception maps to (status, code, message)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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


class ClientDisconnected(ServiceError):
    """The client went away before its request body was whole (nothing of it is used)."""

    status_code, code = 400, "client_disconnected"


class DatabaseBusy(ServiceError):
    """The database stayed locked for the whole busy timeout: try again shortly."""

    status_code, code = 503, "database_busy"
    retry_after_s = 1


# SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6); PostgreSQL: lock_not_available,
# serialization_failure, deadlock_detected
_SQLITE_BUSY_CODES = {5, 6}
_SQLITE_BUSY_TEXT = ("database is locked", "database table is locked", "database schema is locked")
_POSTGRES_BUSY_CODES = {"55P03", "40001", "40P01"}


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` says the database was too busy (a lock not granted in time), nothing worse."""
    if isinstance(exc, DatabaseBusy | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlite_errorcode", None) in _SQLITE_BUSY_CODES:
        return True
    if getattr(orig, "sqlstate", None) in _POSTGRES_BUSY_CODES:
        return True
    return any(text in str(orig) for text in _SQLITE_BUSY_TEXT)


BUSY_MESSAGE = "the database is busy; try again shortly"


def classify(exc: Exception) -> tuple[int, str, str, Any]:
    if isinstance(exc, ServiceError):
        return exc.status_code, exc.code, exc.message, exc.details
    if is_busy(exc):
        return DatabaseBusy.status_code, DatabaseBusy.code, BUSY_MESSAGE, None
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
    if isinstance(exc, (OverflowError, DataError)):  # a value the database cannot hold
        return 422, "invalid_value", "a value in the request is out of range or malformed", None
    return 500, "internal_error", "an unexpected error occurred; see the service log", None


def describe_exception(exc: Exception) -> tuple[str, str]:
    """(code, message) of any exception, as jobs record it."""
    _, code, message, _ = classify(exc)
    return code, message
