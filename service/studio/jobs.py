"""Label Studio's jobs: a round (select, then push), a re-push, withdrawing waiting tasks,
refreshing the waiting tasks' suggestions, reconciliation, and training (which refreshes the
tasks when it moves the model).

Every job here but training works on the service's Label Studio project, so each runs in
that project's scope (`project_scope`): at most one of them runs at a time, across
processes. To add a kind, write a handler `(ctx, job) -> dict` and add a `JobSpec` to
`HANDLERS`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from labeling.errors import LabelStudioUnavailable
from service.context import ServiceContext
from service.core.progress import scaled
from service.core.settings import Settings
from service.jobs.queue import enqueue
from service.jobs.registry import JobContext, JobSpec
from service.learning.jobs import MODEL_SCOPE, TRAIN_KIND, train
from service.learning.selection import RoundRequest, round_items, select_round
from service.learning.training import current_model
from service.studio.project import ensure_project
from service.studio.push import push_round
from service.studio.reconcile import reconcile
from service.studio.suggestions import (
    holds_suggestions,
    refresh_pending_suggestions,
    resign_expiring_urls,
    stale_items,
)
from service.studio.withdraw import withdraw_waiting


def project_scope(settings: Settings) -> str:
    """The scope of every job that works on the service's Label Studio project."""
    return f"studio-project:{settings.label_studio.project_title}"[:255]


def run_round(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Select a batch, then push it. A retry pushes the round an earlier attempt selected.

    With `replace_waiting`, the untouched tasks of earlier rounds are withdrawn first, so
    their images are ranked anew with the rest of the pool and the queue follows this round.
    """
    round_id = job.checkpoint.get("round_id")
    withdrawn: dict[str, Any] = {}
    if round_id is None and job.params.get("replace_waiting"):
        job.progress(0.0, "withdrawing the waiting tasks of earlier rounds")
        with ctx.sessions() as session:
            report = withdraw_waiting(session, ctx, ensure_project(ctx), round_ids=None)
        withdrawn = {"withdrawn": asdict(report)}
    if round_id is None:
        request = RoundRequest(
            k=int(job.params["k"]),
            strategy=str(job.params["strategy"]),
            retrain=bool(job.params["retrain"]),
            seed=job.params.get("seed"),
            class_balanced=bool(job.params.get("class_balanced", False)),
        )
        with ctx.sessions() as session:
            round_id = select_round(session, ctx, request, progress=scaled(job.progress, 0, 0.9)).id
        job.save_checkpoint({"round_id": round_id})
    job.progress(0.9, "pushing tasks to Label Studio")
    with ctx.sessions() as session:
        round_ = push_round(session, ctx, int(round_id), progress=scaled(job.progress, 0.9, 1))
        pushed = len(round_items(session, round_.id))
        job.progress(1.0, f"round {round_.id}: {pushed} tasks pushed")
        return {
            "round_id": round_.id,
            "model_version": round_.model_version,
            "project_id": round_.project_id,
            "embedded": round_.embedded,
            "images_per_second": round_.embedding_rate,
            **withdrawn,
        }


def push(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Push one round again (after Label Studio was down); a pushed round is left as it is."""
    with ctx.sessions() as session:
        round_ = push_round(session, ctx, int(job.params["round_id"]), progress=job.progress)
        items = round_items(session, round_.id)
        return {
            "round_id": round_.id,
            "status": round_.status,
            "tasks": sum(1 for item in items if item.task_id is not None),
        }


WITHDRAW_KIND = "withdraw"


def withdraw(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Take a round's untouched tasks out of the annotators' queue (see `withdraw.py`)."""
    round_id = int(job.params["round_id"])
    with ctx.sessions() as session:
        report = withdraw_waiting(session, ctx, ensure_project(ctx), round_ids=[round_id])
    return {"round_id": round_id, **asdict(report)}


REFRESH_KIND = "refresh_suggestions"


def refresh_suggestions(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Give every waiting task the active version's suggestion (idempotent: only stale ones)."""
    project_id = ensure_project(ctx)
    with ctx.sessions() as session:
        model = current_model(session, ctx)
        if model is None:
            return {"model_version": None, "refreshed": 0}
        refreshed = refresh_pending_suggestions(session, ctx, project_id, model.id)
        resigned = resign_expiring_urls(session, ctx)
        shown = holds_suggestions(session, model.id)
    if shown:
        ctx.gateway.use_model_version(project_id, model.id)
    return {
        "model_version": model.id,
        "refreshed": refreshed,
        "resigned": resigned,
        "project_version_set": shown,
    }


def train_then_refresh(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Learning's train job, then a refresh job when waiting tasks show another version.

    Declared here, not in learning, because only this layer knows Label Studio's tasks. A
    process that dies between the two runs the whole job again (training is idempotent), so
    the refresh is never lost.
    """
    result = train(ctx, job)
    version = str(result["model_version"])
    with ctx.sessions() as session:
        if stale_items(session, version):
            scope = project_scope(ctx.settings)
            params = {"model_version": version}
            refresh = enqueue(session, REFRESH_KIND, params, scope=scope, key=version)
            session.commit()
            result["refresh_job_id"] = refresh.id
    return result


RECONCILE_KIND = "reconcile"


def reconcile_every(settings: Settings) -> float | None:
    return settings.label_studio.reconcile_every_s or None


def run_reconcile(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Reconcile (see `reconcile.py`); idempotent, so a job whose lease expired runs again."""
    report = reconcile(ctx, full=bool(job.params.get("full")), progress=job.progress)
    result = asdict(report)
    result["since"] = report.since.isoformat() if report.since else None
    result["problems"] = result["problems"][:100]
    return result


# Label Studio being down is worth another attempt (after 2 s, then 4 s); anything else is not.
HANDLERS = {
    "round": JobSpec("round", run_round, retry_on=(LabelStudioUnavailable,)),
    "push": JobSpec("push", push, retry_on=(LabelStudioUnavailable,)),
    WITHDRAW_KIND: JobSpec(WITHDRAW_KIND, withdraw, retry_on=(LabelStudioUnavailable,)),
    REFRESH_KIND: JobSpec(REFRESH_KIND, refresh_suggestions, retry_on=(LabelStudioUnavailable,)),
    RECONCILE_KIND: JobSpec(
        RECONCILE_KIND,
        run_reconcile,
        every_s=reconcile_every,
        scope=project_scope,
        retry_on=(LabelStudioUnavailable,),
    ),
    TRAIN_KIND: JobSpec(TRAIN_KIND, train_then_refresh, scope=MODEL_SCOPE),
}
