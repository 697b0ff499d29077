"""The drift report as a use case: read a window, run the checks, spend alpha, store, announce.

The window of a report runs from the previous drift report's end (or from the moment the
guide version's reference was fixed) to now. The first check under a guide version only
fixes the reference. A report is stored only when at least one check had data to run on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.orm import utcnow
from service.core.progress import Progress, no_progress, scaled
from service.quality.drift.data import aware, describe_reference, reference_for
from service.quality.drift.gather import gather
from service.quality.drift.judge import Judged, Spending, judge_all
from service.quality.drift.schemas import DriftReport, HistoryPoint
from service.quality.notify import notify, slack_payload
from service.quality.run import report_url
from service.quality.schemas import Window
from service.quality.store import store_report
from service.quality.tables import QualityReport
from service.quality.verdicts import drift_verdict

HISTORY_POINTS = 30


@dataclass(frozen=True)
class DriftOutcome:
    report_id: int | None
    report: DriftReport | None
    skipped: list[str]  # why checks did not run (all of them when no report was stored)
    notified: bool = False


def previous_reports(session: Session, fingerprint: str) -> list[QualityReport]:
    """This guide version's drift reports, oldest first (at most `HISTORY_POINTS`)."""
    rows = session.scalars(
        select(QualityReport)
        .where(QualityReport.kind == "drift")
        .order_by(QualityReport.id.desc())
        .limit(HISTORY_POINTS * 4)
    )
    mine = [row for row in rows if row.body.get("guide_fingerprint") == fingerprint]
    return list(reversed(mine[:HISTORY_POINTS]))


def history_point(report_id: int | None, created_at: datetime, checks: list[dict]) -> HistoryPoint:
    ran = [c for c in checks if c["status"] == "ran"]
    return HistoryPoint(
        report_id=report_id,
        created_at=created_at,
        p_values={c["check"]: c["p_value"] for c in ran},
        levels={c["check"]: c["level"] for c in ran},
    )


def run_drift_report(
    ctx: ServiceContext, *, trigger: str, progress: Progress = no_progress
) -> DriftOutcome:
    """Check the window since the last report; store the report and announce a drift.

    Everything is read and computed with no write pending (the alpha-spending sequences as
    plain values); the report, its audit entries and the spent alpha are then written and
    committed together in one short unit.
    """
    guide = ctx.guide
    with ctx.sessions() as session:
        reference, fixed = reference_for(session, guide)
        session.commit()
        if fixed:
            return DriftOutcome(None, None, [f"reference fixed: {describe_reference(reference)}"])
        earlier = previous_reports(session, guide.fingerprint())
        start = aware(reference.registered_until)
        if earlier:
            start = datetime.fromisoformat(earlier[-1].body["window"]["end"])
        end = utcnow()
        data = gather(session, ctx, reference, start, end, progress=scaled(progress, 0, 0.7))
        progress(0.7, "running the checks")
        judged = judge_all(session, ctx, data, progress=scaled(progress, 0.7, 0.95))
    if not any(c.status == "ran" for c in judged.checks):
        return DriftOutcome(None, None, [f"{c.check}: {c.reason}" for c in judged.checks])
    report = build_report(ctx, judged, reference, trigger, Window(start=start, end=end))
    report.history = [
        *(history_point(r.id, r.created_at, r.body["checks"]) for r in earlier),
        history_point(None, report.created_at, [c.model_dump() for c in report.checks]),
    ]
    report_id = store(ctx, judged.spending, report)
    notified = False
    if report.verdict == "failed":  # a report is stored only when a check ran
        notified = notify(ctx.settings, payload(ctx, report, report_id))
    skipped = [f"{c.check}: {c.reason}" for c in report.checks if c.status == "skipped"]
    return DriftOutcome(report_id, report, skipped, notified)


def store(ctx: ServiceContext, spending: Spending, report: DriftReport) -> int:
    """Spend the alpha and store the report with its audit entries, in one write unit."""
    with ctx.writing() as session:
        spending.save(session)
        row = store_report(session, "drift", report)
        session.commit()
        return row.id


def build_report(
    ctx: ServiceContext,
    judged: Judged,
    reference,
    trigger: str,
    window: Window,  # noqa: ANN001
) -> DriftReport:
    guide = ctx.guide
    verdict, reason = drift_verdict(judged.checks)
    return DriftReport(
        created_at=utcnow(),
        guide_name=guide.name,
        guide_version=str(guide.version),
        guide_fingerprint=guide.fingerprint(),
        model_version=judged.model_version,
        window=window,
        sample_sizes=judged.sample_sizes,
        false_alarm_control=judged.control,
        passed=verdict == "passed",
        verdict=verdict,
        reason=reason,
        trigger=trigger,
        alpha=guide.thresholds.drift_significance,
        reference_rule=describe_reference(reference),
        reference_until=aware(reference.registered_until),
        checks=judged.checks,
        novel_images=judged.novel_images,
        label_counts=judged.label_counts,
        annotators=judged.annotators,
        projection=judged.projection,
        history=[],
        decisions=judged.decisions,
    )


def payload(ctx: ServiceContext, report: DriftReport, report_id: int) -> dict[str, object]:
    lines = [
        f"{c.check}: p = {c.p_value:.3g} <= level {c.level:.3g} "
        f"(n_new = {c.n_new}, n_reference = {c.n_reference})"
        for c in report.checks
        if c.drifted and c.p_value is not None and c.level is not None
    ]
    if report.novel_images:
        lines.append(f"{len(report.novel_images)} images unlike anything in the reference")
    title = f"Drift detected ({report.guide_name} v{report.guide_version})"
    return slack_payload(title, lines, report_url(ctx, report_id))
