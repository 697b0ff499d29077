"""The active-version pointer: which trained head serves predictions and rounds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.orm import Base, utcnow


class ActiveModel(Base):
    """The model version in force for one backbone (one row per backbone)."""

    __tablename__ = "active_models"

    backbone_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
