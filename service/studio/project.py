"""The service's Label Studio project, with its webhook registered (both idempotent)."""

from __future__ import annotations

from labeling.studio_config import project_spec
from service.context import ServiceContext
from service.studio.webhooks import SECRET_HEADER, WEBHOOK_PATH, webhook_secret


def webhook_url(ctx: ServiceContext) -> str:
    return ctx.settings.public_url.rstrip("/") + WEBHOOK_PATH


def ensure_project(ctx: ServiceContext) -> int:
    """Create or reuse the project for the guide, and register the service's webhook on it.

    Call it outside any open transaction: it talks to Label Studio.
    """
    project_id = ctx.gateway.ensure_project(
        project_spec(ctx.guide, title=ctx.settings.label_studio.project_title)
    )
    ctx.gateway.ensure_webhook(
        project_id, webhook_url(ctx), {SECRET_HEADER: webhook_secret(ctx.settings)}
    )
    return project_id
