"""Quality reports: list, read as JSON or HTML, run an agreement check; gold and live alpha."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select

from service.api.deps import ContextDep, SessionDep
from service.api.pagination import CursorQuery, LimitQuery, page_rows
from service.api.routes.jobs import accepted
from service.api.schemas import JobAccepted
from service.auth.roles import Role, requires
from service.core.errors import NotFound
from service.jobs.queue import enqueue
from service.quality.drift.html import drift_html
from service.quality.gold import register_gold
from service.quality.html import agreement_html
from service.quality.jobs import AGREEMENT_KIND
from service.quality.store import get_report, summary
from service.quality.tables import QualityReport

router = APIRouter(tags=["reports"])
ReportKind = Literal["agreement", "drift"]


@router.get("/reports")
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def list_reports(
    session: SessionDep,
    kind: Annotated[ReportKind | None, Query()] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> dict[str, Any]:
    """Stored reports, oldest first, one page at a time (`next_cursor`)."""
    query = select(QualityReport)
    if kind is not None:
        query = query.where(QualityReport.kind == kind)
    rows, next_cursor = page_rows(session, query, QualityReport.id, limit=limit, cursor=cursor)
    return {"items": [summary(row) for row in rows], "next_cursor": next_cursor}


@router.post("/reports/agreement", response_model=JobAccepted, status_code=status.HTTP_202_ACCEPTED)
@requires(Role.pipeline)
def run_agreement(session: SessionDep) -> JobAccepted:
    """Compute an agreement report now, as a job (its result names the report)."""
    job = enqueue(session, AGREEMENT_KIND, {"act": True})
    session.commit()
    return accepted(job.id)


@router.get("/reports/{report_id}.html", response_class=HTMLResponse)
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def report_html(
    report_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep
) -> Response:
    return HTMLResponse(render(get_report(session, report_id)))


@router.get("/reports/{report_id}")
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def report(
    report_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: SessionDep,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> Response:
    """The report's JSON body (its `schema_version` names the schema), or `?format=html`."""
    row = get_report(session, report_id)
    if format == "html":
        return HTMLResponse(render(row))
    return JSONResponse({"id": row.id, "kind": row.kind, **row.body})


def render(row: QualityReport) -> str:
    return drift_html(row.body) if row.kind == "drift" else agreement_html(row.body)


@router.post("/gold/register")
@requires(Role.admin)
def gold(context: ContextDep, session: SessionDep) -> dict[str, Any]:
    """Register the guide's gold images from `quality.gold_dir` (idempotent)."""
    result = register_gold(session, context)
    return {"registered": result.registered, "known": result.known, "skipped": result.skipped}


@router.get("/quality/live")
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def live(request: Request) -> dict[str, Any]:
    """Krippendorff's alpha and percent agreement, kept up to date as annotations arrive."""
    tracker = getattr(request.app.state, "live_agreement", None)
    if tracker is None:
        raise NotFound("live agreement is not running")
    alpha, percent = tracker.alpha(), tracker.percent_agreement()
    return {
        "krippendorff_alpha": None if alpha.value != alpha.value else alpha.value,
        "alpha_units": alpha.n_units,
        "percent_agreement": None if percent.value != percent.value else percent.value,
        "updates": tracker.updates,
    }
