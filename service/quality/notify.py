"""A failed check announced to a Slack-compatible incoming webhook (`quality.notify_url`).

Sent after the report is committed, from the job; a failed delivery is logged and never
fails the job (the report and its audit entries are the record).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from service.core.settings import Settings

log = logging.getLogger(__name__)


def slack_payload(title: str, lines: list[str], url: str) -> dict[str, Any]:
    """`{"text": ..., "blocks": [...]}`: a header, the failed checks and a link."""
    text = f"{title}: {url}"
    body = "\n".join(f"• {line}" for line in lines) or "see the report"
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{url}|Open the report>"}},
        ],
    }


def notify(settings: Settings, payload: dict[str, Any]) -> bool:
    """POST `payload` to the configured webhook; True when it answered 2xx."""
    url = settings.quality.notify_url
    if not url:
        return False
    try:
        response = httpx.post(url, json=payload, timeout=settings.quality.notify_timeout_s)
    except httpx.HTTPError as err:
        log.warning("quality notification not delivered: %s", err)
        return False
    if response.is_success:
        return True
    log.warning("quality notification refused: %s", response.status_code)
    return False
