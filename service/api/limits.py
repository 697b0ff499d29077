"""A request body limit, enforced before and while the body arrives, never after reading it.

A declared `Content-Length` over the limit is answered 413 `payload_too_large` at once; a body
sent without one (chunked) is counted chunk by chunk and refused as soon as it passes the limit,
so nothing larger than the limit is ever buffered or spooled. Multipart bodies (uploads) have
their own, larger limit; the webhook route keeps its own smaller one.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body


class BodyLimitMiddleware:
    """Refuse request bodies over `body_bytes` (`multipart_bytes` for multipart/form-data)."""

    def __init__(self, app: ASGIApp, *, body_bytes: int, multipart_bytes: int) -> None:
        self.app = app
        self.body_bytes = body_bytes
        self.multipart_bytes = multipart_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.multipart_bytes if multipart else self.body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0

        async def receive_at_most() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException passes through body parsing to the app's 413 handler.
                    raise HTTPException(413, f"request bodies are limited to {limit} bytes")
            return message

        await self.app(scope, receive_at_most, send)


def _too_large(limit: int) -> JSONResponse:
    message = f"request bodies are limited to {limit} bytes"
    return JSONResponse(error_body("payload_too_large", message), status_code=413)
