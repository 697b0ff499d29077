"""Drift tables: the reference each guide version fixes, and each check kind's alpha spending."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.orm import Base, utcnow


class DriftReference(Base):
    """The reference of one guide version: the pool as registered up to `registered_until`."""

    __tablename__ = "drift_references"

    guide_fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    guide_version: Mapped[str] = mapped_column(String(64))
    registered_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DriftSpending(Base):
    """Where one check kind's alpha-spending sequence stands under one guide version."""

    __tablename__ = "drift_spending"

    guide_fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    check: Mapped[str] = mapped_column(String(32), primary_key=True)  # images, labels, ...
    alpha: Mapped[float] = mapped_column(Float)
    horizon: Mapped[int] = mapped_column(Integer)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    spent: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
