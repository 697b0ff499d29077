"""Intake tables: raw webhook events as received, and the reconciliation watermark."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.core.orm import Base, utcnow


class WebhookEvent(Base):
    """One Label Studio webhook delivery, stored before it is answered, then applied.

    `body_sha256` makes a replayed delivery a no-op. `status`: pending (stored, not yet
    applied; retried by reconciliation) -> applied, or failed after repeated errors (the
    change itself is still read back by reconciliation).
    """

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    action: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReconcileState(Base):
    """Per project: the Label Studio changes up to `watermark` are known to be stored."""

    __tablename__ = "reconcile_state"

    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_full_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tasks_read: Mapped[int] = mapped_column(Integer, default=0)  # by the last run
