"""Drift jobs: the pool's drift report (after each registration, on demand) and a pipeline's
batch too large to check synchronously.

Both run in the `drift` scope, one at a time: a report reads and spends the alpha-spending
state. A report job saves its report id as a checkpoint, so a rerun does not check twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from service.context import ServiceContext
from service.jobs.registry import JobContext, JobInterrupted, JobSpec
from service.quality.drift.batch import check_files, check_ids, folder_files
from service.quality.drift.run import run_drift_report
from service.quality.run import report_url

DRIFT_REPORT_KIND = "drift_check"  # also enqueued by name from service/pool/jobs.py
DRIFT_BATCH_KIND = "drift_batch"
DRIFT_SCOPE = "drift"


def drift_report(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Check the window since the last drift report; the result names the stored report."""
    if "report_id" in job.checkpoint:
        return dict(job.checkpoint)
    outcome = run_drift_report(
        ctx, trigger=str(job.params.get("trigger", "on_demand")), progress=job.progress
    )
    if outcome.report is None:
        reason = "; ".join(outcome.skipped) or None
        return {
            "report_id": None,
            "passed": None,
            "verdict": "no_data",
            "reason": reason,
            "skipped": outcome.skipped,
        }
    result = {
        "report_id": outcome.report_id,
        "passed": outcome.report.passed,
        "verdict": outcome.report.verdict,
        "reason": outcome.report.reason,
        "skipped": outcome.skipped,
        "notified": outcome.notified,
        "report_url": report_url(ctx, outcome.report_id or 0),
    }
    job.save_checkpoint(result)
    return result


def drift_batch(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """A pipeline's batch: `image_ids`, a `folder` under the roots, or an `uploads` folder."""
    params = job.params
    if "image_ids" in params:
        verdict = check_ids(ctx, [int(i) for i in params["image_ids"]], progress=job.progress)
        return verdict.model_dump(mode="json")
    folder = Path(str(params.get("uploads") or params["folder"]))
    try:
        files = folder_files(folder)
        names = [str(p.relative_to(folder)) for p in files]
        if params.get("uploads"):
            names = [name.split("-", 1)[-1] for name in names]  # "00001-a.png" -> "a.png"
        verdict = check_files(ctx, files, names, progress=job.progress)
    except JobInterrupted:
        raise  # runs again: keep the uploads
    except BaseException:
        _remove_uploads(params)
        raise
    _remove_uploads(params)
    return verdict.model_dump(mode="json")


def _remove_uploads(params: dict[str, Any]) -> None:
    if params.get("uploads"):
        shutil.rmtree(str(params["uploads"]), ignore_errors=True)


HANDLERS = {
    DRIFT_REPORT_KIND: JobSpec(DRIFT_REPORT_KIND, drift_report, scope=DRIFT_SCOPE),
    DRIFT_BATCH_KIND: JobSpec(DRIFT_BATCH_KIND, drift_batch, scope=DRIFT_SCOPE),
}
