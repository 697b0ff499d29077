"""Quality's jobs: the agreement check (on demand, or every `quality.agreement_every_s`);
the drift jobs are declared in `drift/jobs.py`.

To add a kind, write a handler `(ctx, job) -> dict` and add a `JobSpec` to `HANDLERS`.
"""

from __future__ import annotations

from typing import Any

from labeling.errors import LabelStudioUnavailable
from service.context import ServiceContext
from service.core.settings import Settings
from service.jobs.registry import JobContext, JobSpec
from service.quality.drift.jobs import HANDLERS as DRIFT_HANDLERS
from service.quality.run import report_url, run_agreement
from service.quality.verdicts import label

AGREEMENT_KIND = "agreement_report"


def agreement_every(settings: Settings) -> float | None:
    return settings.quality.agreement_every_s or None


def agreement(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Compute and store an agreement report; failing tasks get another annotator."""
    job.progress(0.1, "reading answers")
    outcome = run_agreement(ctx, act=bool(job.params.get("act", True)))
    report = outcome.report
    job.progress(1.0, f"report {outcome.report_id}: {label(report.verdict)}")
    return {
        "report_id": outcome.report_id,
        "passed": report.passed,
        "verdict": report.verdict,
        "reason": report.reason,
        "overlaps_raised": outcome.overlaps_raised,
        "notified": outcome.notified,
        "report_url": report_url(ctx, outcome.report_id),
    }


HANDLERS = {
    AGREEMENT_KIND: JobSpec(
        AGREEMENT_KIND,
        agreement,
        retry_on=(LabelStudioUnavailable,),
        every_s=agreement_every,
    ),
    **DRIFT_HANDLERS,
}
