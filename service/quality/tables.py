"""Quality tables: gold answers (known only here) and stored reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.orm import Base, utcnow


class GoldAnswer(Base):
    """The expected label of a gold image; its task in Label Studio shows nothing of it."""

    __tablename__ = "gold_answers"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    expected_label: Mapped[str] = mapped_column(String(128))
    reference: Mapped[str] = mapped_column(String(1024))  # the guide's `gold_tasks[].image`
    guide_version: Mapped[str] = mapped_column(String(64))
    guide_fingerprint: Mapped[str] = mapped_column(String(32))


class QualityReport(Base):
    """One agreement or drift report: its JSON body follows `schema_version`."""

    __tablename__ = "quality_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # agreement | drift
    schema_version: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    guide_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    passed: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
