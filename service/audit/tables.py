"""The audit table: one row per recorded action, never changed once written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, UOWTransaction, mapped_column

from service.core.orm import Base, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere the key is 64-bit.
AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    """Who (`actor`) did what (`action`) to which subject, when, with the state before/after."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_subject", "subject_type", "subject_id"),
        Index("ix_audit_log_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(AuditId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[Any | None] = mapped_column(JSON(none_as_null=True))
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)


class AuditIsAppendOnly(RuntimeError):
    """Raised on any attempt to change or remove an audit entry: a bug, never user input."""


@event.listens_for(Session, "before_flush")
def _refuse_changed_entries(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    changed = [e for e in session.dirty if isinstance(e, AuditEntry) and session.is_modified(e)]
    if changed or any(isinstance(e, AuditEntry) for e in session.deleted):
        raise AuditIsAppendOnly("audit entries are never changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and getattr(state.statement, "table", None) is (
        AuditEntry.__table__
    ):
        raise AuditIsAppendOnly("audit entries are never changed or deleted")
