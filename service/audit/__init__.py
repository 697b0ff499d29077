"""The audit trail: an append-only record of who changed what, written with the change.

`record(session, action, actor=..., subject=(type, id), before=..., after=...)` adds an entry
in the caller's transaction, so an entry exists exactly when its change was committed.
Entries are never updated or deleted: the ORM refuses to flush such changes, and the
database refuses them with triggers.
"""

from service.audit.trail import (
    ACTIONS,
    AuditQuery,
    Subject,
    as_dict,
    entries,
    export_lines,
    record,
)

__all__ = ["ACTIONS", "AuditQuery", "Subject", "as_dict", "entries", "export_lines", "record"]
