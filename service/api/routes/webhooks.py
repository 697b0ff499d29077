"""Label Studio's webhook: authenticated by a shared secret header, stored before it is answered."""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Request, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from service.api.deps import ContextDep
from service.core.errors import ClientDisconnected, PayloadTooLarge
from service.studio.webhooks import (
    SECRET_HEADER,
    apply_event,
    check_secret,
    parse_body,
    receive,
    webhook_secret,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])


class WebhookReceived(BaseModel):
    event_id: int
    action: str
    duplicate: bool  # stored before: a replay changes nothing


@router.post(
    "/webhooks/label-studio",
    response_model=WebhookReceived,
    status_code=status.HTTP_202_ACCEPTED,
    responses={401: {"description": "missing or wrong secret header"}},
)
async def label_studio_event(
    request: Request, context: ContextDep, background: BackgroundTasks
) -> WebhookReceived:
    """An annotation created, updated or deleted, or tasks deleted, in Label Studio.

    The raw event is committed before the answer; it is applied right after (and by the
    reconciliation job if that fails). Needs the `X-Activelabel-Webhook-Secret` header.
    """
    secret = await run_in_threadpool(webhook_secret, context.settings)
    check_secret(secret, request.headers.get(SECRET_HEADER))
    limit = context.settings.label_studio.webhook_max_bytes
    body = await _read_at_most(request, limit)
    parsed = parse_body(body, max_bytes=limit)
    received = await run_in_threadpool(receive, context, body, parsed)
    if not received.duplicate:
        background.add_task(apply_event, context, received.event_id)
    return WebhookReceived(
        event_id=received.event_id, action=received.action, duplicate=received.duplicate
    )


async def _read_at_most(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it grows past `limit` bytes (never read whole).

    A sender that disconnects mid-body (Label Studio gives up after its timeout) gets 400
    `client_disconnected`: an incomplete event is never stored.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"webhook bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"webhook bodies are limited to {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        log.info("webhook sender disconnected after %d bytes of the body: nothing stored", size)
        raise ClientDisconnected("the sender disconnected before the body was whole") from None
    return b"".join(chunks)
