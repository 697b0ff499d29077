"""The agreement check as a use case: compute, act in Label Studio, store, announce.

Order: read the answers and decide; raise the overlap of failing tasks in Label Studio
(absolute values, so a rerun is harmless); store the report with its audit entries in one
commit; then send the notification when a check failed. A report with nothing to judge
(`no_data`) or too little (`undecided`) alerts nobody: it failed nothing, and the board and
the report page say what is missing; a failure's alert names the checks that had no data.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.learning.versions import active_model
from service.quality import agreement as A
from service.quality.data import latest_answers
from service.quality.decide import (
    annotator_decisions,
    batch_decisions,
    failing_tasks,
    report_checks,
    task_decisions,
)
from service.quality.notify import notify, slack_payload
from service.quality.schemas import AgreementReport
from service.quality.store import store_report
from service.quality.verdicts import label, overall


@dataclass(frozen=True)
class Outcome:
    report_id: int
    report: AgreementReport
    overlaps_raised: int
    notified: bool


def compute_agreement(session: Session, ctx: ServiceContext) -> AgreementReport:
    """The agreement report of the current answers, with its decisions."""
    guide, method = ctx.guide, ctx.settings.quality.consensus
    answers = latest_answers(session, guide)
    table = A.table_of(answers, guide)
    labels, _, _ = A.consensus_labels(table, method)
    consensus = A.consensus_tasks(answers, table, guide, method)
    rows = A.annotator_rows(answers, table, labels)
    by_version, by_class = A.acceptance(answers, guide)
    decisions = [
        *batch_decisions(table, by_version, guide.thresholds, "agreement"),
        *annotator_decisions(rows, guide.thresholds),
        *task_decisions(table, guide.thresholds),
    ]
    checks = report_checks(decisions)
    verdict, reason = overall(checks)
    counts = {name: 0 for name in guide.label_names}
    for task in consensus:
        counts[task.label] += 1
    model = _model_version(session, ctx)
    return AgreementReport(
        created_at=A.now(),
        guide_name=guide.name,
        guide_version=str(guide.version),
        guide_fingerprint=guide.fingerprint(),
        model_version=model,
        window=A.window_of(answers),
        sample_sizes={
            "answers": len(answers),
            "tasks": len(table.unit_ids),
            "annotators": len(table.annotator_ids),
            "gold_answers": sum(a.gold >= 0 for a in answers),
            "suggestions_shown": sum(a.shown >= 0 for a in answers),
        },
        false_alarm_control=A.FALSE_ALARMS,
        passed=verdict == "passed",
        verdict=verdict,
        reason=reason,
        labels=guide.label_names,
        stats=A.agreement_stats(table),
        consensus_method=method,
        consensus=consensus,
        annotators=rows,
        acceptance_by_version=by_version,
        acceptance_by_class=by_class,
        label_counts=counts,
        priors=guide.class_priors,
        checks=checks,
        decisions=decisions,
    )


def run_agreement(ctx: ServiceContext, *, act: bool = True) -> Outcome:
    """Compute, raise failing tasks' overlap (when `act`), store and announce a failure."""
    with ctx.sessions() as session:
        report = compute_agreement(session, ctx)
    raised = failing_tasks(report.decisions) if act else []
    for task_id, overlap in raised:
        ctx.gateway.set_task_overlap(task_id, overlap)
    with ctx.sessions() as session:
        row = store_report(session, "agreement", report)
        session.commit()
        report_id = row.id
    notified = False
    if report.verdict == "failed":
        notified = notify(ctx.settings, _payload(ctx, report, report_id))
    return Outcome(report_id, report, len(raised), notified)


def report_url(ctx: ServiceContext, report_id: int) -> str:
    return f"{ctx.settings.public_url.rstrip('/')}/v1/reports/{report_id}.html"


def _payload(ctx: ServiceContext, report: AgreementReport, report_id: int) -> dict[str, object]:
    failed = [d for d in report.decisions if d.verdict == "fail" and d.scope != "task"]
    lines = [
        f"{d.scope} {d.subject}: {d.check} {d.value if d.value is not None else 'n/a'} "
        f"< {d.threshold} (n={d.sample_size})"
        for d in failed
    ]
    lines += [
        f"{c.check}: {label(c.verdict)} ({c.reason})"
        for c in report.checks
        if c.verdict in ("no_data", "undecided")
    ]
    title = f"Agreement check failed ({report.guide_name} v{report.guide_version})"
    return slack_payload(title, lines, report_url(ctx, report_id))


def _model_version(session: Session, ctx: ServiceContext) -> str | None:
    model = active_model(session, ctx)
    return model.id if model is not None else None
