"""Stored reports: add one with its decisions in the audit trail, list them, read one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import record
from service.core.errors import NotFound
from service.quality.schemas import ReportHeader
from service.quality.tables import QualityReport
from service.quality.verdicts import verdict_of


def store_report(session: Session, kind: str, report: ReportHeader) -> QualityReport:
    """Add the report and one `quality.decision` audit entry per decision (flush only)."""
    row = QualityReport(
        kind=kind,
        schema_version=report.schema_version,
        created_at=report.created_at,
        guide_version=report.guide_version,
        model_version=report.model_version,
        passed=report.passed,
        body=report.model_dump(mode="json"),
    )
    session.add(row)
    session.flush()
    for decision in getattr(report, "decisions", []):
        record(
            session,
            "quality.decision",
            actor="quality",
            subject=(f"{decision.scope}", decision.subject),
            after={"report_id": row.id, "kind": kind, **decision.model_dump(mode="json")},
        )
    return row


def list_reports(
    session: Session, *, kind: str | None, after_id: int | None, limit: int
) -> list[QualityReport]:
    """Newest first; `after_id` continues a page (ids below it)."""
    query = select(QualityReport).order_by(QualityReport.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(QualityReport.kind == kind)
    if after_id is not None:
        query = query.where(QualityReport.id < after_id)
    return list(session.scalars(query))


def get_report(session: Session, report_id: int) -> QualityReport:
    row = session.get(QualityReport, report_id)
    if row is None:
        raise NotFound(f"report {report_id} does not exist")
    return row


def summary(row: QualityReport) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "schema_version": row.schema_version,
        "created_at": row.created_at.isoformat(),
        "guide_version": row.guide_version,
        "model_version": row.model_version,
        "passed": row.passed,
        "verdict": verdict_of(row.body)[0],
    }
