"""Studio tables: raw webhook events as received, the reconciliation watermark, and the ledger
of the tasks the service created (one per image content and project)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
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
    # Tasks up to this id were checked for twins of one content (`studio/twins.py`).
    twins_checked_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ContentTask(Base):
    """The one Label Studio task of an image's content in a project (`studio/ledger.py`).

    A row is added, with `task_id` unset, before the import chunk that creates its task is
    sent, and gets the task id once Label Studio has answered: a row found without a task id
    belongs to a chunk that was cut off, whose task may exist. `content_sha256` is also in the
    task's `meta`, so such a task is recognised. `withdrawn_at`: set when the task was taken
    out of the annotators' queue.
    """

    __tablename__ = "studio_tasks"
    __table_args__ = (UniqueConstraint("project_id", "content_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(Integer, index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
