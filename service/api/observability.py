"""The outermost middleware: request ids, request metrics, one log line per request.

Each request runs in a `service.core.logs.scope` whose id is the caller's `X-Request-ID`
(when it is a sane token) or a new one; the id is echoed in the response header and carried
by every log line and audit entry. An exception no handler answered becomes a JSON 500
here, with the id, instead of escaping to the server: escaping would make it drop the
keep-alive connection.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.deps import CurrentKey
from service.api.errors import error_body, error_headers
from service.api.metrics import observe_request
from service.core.errors import classify
from service.core.logs import scope as request_scope
from service.core.logs import set_actor

log = logging.getLogger("activelabel.requests")
HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_of(scope: Scope) -> str:
    """The caller's request id when it is a short token, otherwise a fresh one."""
    for name, value in scope.get("headers", []):
        if name == HEADER:
            text = value.decode("latin-1")
            if _SANE_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template with its router's prefix, or `unmatched`.

    An included router's route knows only its own path (`/images/{image_id}`); the prefix
    (`/v1`) is the part of the request path before where that route matches.
    """
    route = scope.get("route")
    template, pattern = getattr(route, "path", None), getattr(route, "path_regex", None)
    if template is None or pattern is None:
        return "unmatched"
    path: str = scope["path"]
    for start in (i for i, char in enumerate(path) if char == "/"):
        if pattern.match(path[start:]):
            return path[:start] + str(template)
    return str(template)


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        status, responded, started = 500, False, time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode())]
            await send(message)

        with request_scope(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if responded:  # the response had started: nothing sane can follow it
                    raise
                await _send_error(send_with_id, exc, f"{scope['method']} {route_template(scope)}")
            finally:
                seconds = time.perf_counter() - started
                route = route_template(scope)
                observe_request(scope["method"], route, status, seconds)
                log.info(
                    "%s %s %s",
                    scope["method"],
                    route,
                    status,
                    extra={"status": status, "duration_ms": round(seconds * 1000, 2)},
                )


async def _send_error(send: Send, exc: Exception, where: str) -> None:
    """Answer an exception no handler took, as the error handlers would have."""
    status, code, message, details = classify(exc)
    if status >= 500:
        log.error("unhandled error in %s", where, exc_info=exc)
    body = json.dumps(error_body(code, message, details)).encode()
    extra = [
        (k.lower().encode(), v.encode()) for k, v in (error_headers(status, code) or {}).items()
    ]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def name_actor(key: CurrentKey) -> None:
    """Require an API key and name it as the request's actor (for audit entries and logs)."""
    set_actor(f"key:{key.name}")
