"""The audit trail: filtered pages of entries, and the whole trail as JSON lines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, Page, page_rows
from service.audit import ACTIONS, AuditQuery, as_dict, export_lines
from service.audit.tables import AuditEntry
from service.auth.roles import Role, requires

router = APIRouter(tags=["audit"])
AuditAction = Literal[tuple(sorted(ACTIONS))]  # type: ignore[valid-type]  # filters name one


class AuditSubjectOut(BaseModel):
    type: str
    id: str


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject: AuditSubjectOut
    before: Any = None
    after: Any = None
    request_id: str | None


def audit_query(
    action: Annotated[AuditAction | None, Query(description="e.g. `image.registered`")] = None,
    subject_type: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="entries at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="entries before (ISO 8601)")] = None,
) -> AuditQuery:
    return AuditQuery(action, subject_type, subject_id, actor, since, until)


AuditFilter = Annotated[AuditQuery, Depends(audit_query)]


@router.get("/audit", response_model=Page[AuditEntryOut])
@requires(Role.reviewer)
def list_entries(
    session: SessionDep, filters: AuditFilter, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[AuditEntryOut]:
    """Audit entries matching the filters, oldest first."""
    rows, next_cursor = page_rows(
        session, filters.select(), AuditEntry.id, limit=limit, cursor=cursor
    )
    return Page[AuditEntryOut](
        items=[AuditEntryOut.model_validate(as_dict(row)) for row in rows],
        next_cursor=next_cursor,
    )


@router.get("/audit/export", response_class=StreamingResponse)
@requires(Role.reviewer)
def export(context: ContextDep, filters: AuditFilter) -> StreamingResponse:
    """Every matching entry as JSON lines (one object per line, oldest first), streamed."""
    return StreamingResponse(
        export_lines(context.sessions, filters),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )
