"""Recording audit entries in the caller's transaction, and reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from service.audit.tables import AuditEntry
from service.core.logs import current_actor, current_scope
from service.core.orm import utcnow

ACTIONS = frozenset(
    {
        "image.registered",
        "image.retried",
        "round.selected",
        "task.pushed",
        "task.withdrawn",
        "task.twin_deleted",
        "task.twin_adopted",
        "task.twin_kept",
        "annotation.received",
        "annotation.updated",
        "annotation.deleted",
        "label.changed",
        "model.trained",
        "model.activated",
        "quality.decision",
    }
)

Subject = tuple[str, str | int]  # (type, id), e.g. ("image", 12) or ("round", 3)


def record(
    session: Session,
    action: str,
    *,
    actor: str | None = None,
    subject: Subject,
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    """Add an audit entry to `session` (the caller commits it with the change it describes).

    `actor` defaults to whoever the current request or job acts for ("system" outside one);
    `before`/`after` are JSON-able states (dates and paths are written as strings).
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {sorted(ACTIONS)}, got {action!r}")
    kind, key = subject
    if not kind or len(kind) > 32 or len(str(key)) > 128:
        raise ValueError(f"subject must be (type of <= 32 chars, id of <= 128), got {subject!r}")
    scope = current_scope()
    entry = AuditEntry(
        at=utcnow(),
        actor=(actor or current_actor())[:128],
        action=action,
        subject_type=kind,
        subject_id=str(key),
        before=_jsonable(before),
        after=_jsonable(after),
        request_id=scope.request_id[:64] if scope is not None else None,
    )
    session.add(entry)
    return entry


def _jsonable(value: Any) -> Any:
    return None if value is None else json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class AuditQuery:
    """Which entries to read; every field left None matches everything."""

    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    actor: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def select(self) -> Select[tuple[AuditEntry]]:
        """The entries matching, in the order they were written (not yet ordered or limited)."""
        query = select(AuditEntry)
        for column, value in (
            (AuditEntry.action, self.action),
            (AuditEntry.subject_type, self.subject_type),
            (AuditEntry.subject_id, self.subject_id),
            (AuditEntry.actor, self.actor),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(AuditEntry.at >= _utc(self.since))
        if self.until is not None:
            query = query.where(AuditEntry.at < _utc(self.until))
        return query


def _utc(moment: datetime) -> datetime:
    """`moment` in UTC, as entries are stored (a naive time is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def entries(
    session: Session, query: AuditQuery, *, after_id: int = 0, limit: int = 100
) -> list[AuditEntry]:
    """Up to `limit` entries matching `query` with ids above `after_id`, oldest first."""
    statement = query.select().where(AuditEntry.id > after_id).order_by(AuditEntry.id)
    return list(session.scalars(statement.limit(limit)))


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": _utc(entry.at).isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "subject": {"type": entry.subject_type, "id": entry.subject_id},
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
    }


def export_lines(
    sessions: sessionmaker[Session], query: AuditQuery, *, batch: int = 1000
) -> Iterator[str]:
    """Every matching entry as one JSON line, read in batches of short transactions."""
    after_id = 0
    while True:
        with sessions() as session:
            rows = entries(session, query, after_id=after_id, limit=batch)
            lines = [json.dumps(as_dict(row), ensure_ascii=False) + "\n" for row in rows]
        yield from lines
        if len(rows) < batch:
            return
        after_id = rows[-1].id
