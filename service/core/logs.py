"""Who is asking, and JSON log lines that say so.

A request (or job) runs inside a `scope`: its request id and, once known, its actor (the API
key's name, a job). Log records and audit entries read the scope; `configure_json_logging`
makes every log line one JSON object carrying the request id.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass
class Scope:
    """The current request or job. Mutable: a dependency may name the actor once it knows."""

    request_id: str
    actor: str | None = None


_scope: ContextVar[Scope | None] = ContextVar("activelabel_scope", default=None)


@contextmanager
def scope(request_id: str, actor: str | None = None) -> Iterator[Scope]:
    """Run the body as request (or job) `request_id`, on behalf of `actor` when given."""
    token = _scope.set(Scope(request_id, actor))
    try:
        yield _scope.get()  # type: ignore[misc]
    finally:
        _scope.reset(token)


def current_scope() -> Scope | None:
    return _scope.get()


def set_actor(actor: str) -> None:
    """Name who the current request acts for (visible to the whole request, threads included)."""
    current = _scope.get()
    if current is not None:
        current.actor = actor


def current_actor(default: str = "system") -> str:
    current = _scope.get()
    return current.actor if current is not None and current.actor else default


# Attributes every LogRecord has; anything else on a record is an extra worth printing.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        current = _scope.get()
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": current.request_id if current is not None else None,
        }
        body.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


def configure_json_logging(level: str | int = "INFO") -> None:
    """Route the root logger (and uvicorn's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
