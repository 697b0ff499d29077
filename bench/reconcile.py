"""Reconciliation cost follows changes: incremental pass vs a full read of a 20,000-task project.

A real Label Studio holds 20,000 tasks (bulk-imported; they point at URLs nobody loads);
after a first pass sets the watermark, 10 tasks get an annotation. Timed in the same run:
the incremental reconciliation (reads only tasks updated since the watermark) and a full
read of the project through the same code. Goal: incremental <= full / 20.
Writes `bench/results/reconcile.json`.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import insert, select
from studio_env import CACHE, RESULTS, bench_context, start_label_studio, studio_settings

from labeling.local_server import LocalLabelStudio
from labeling.tasks import Suggestion, TaskDraft, prediction_result
from service.context import ServiceContext
from service.core.orm import Image, utcnow
from service.studio.project import ensure_project
from service.studio.reconcile import reconcile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--changed", type=int, default=10)
    args = parser.parse_args()
    server = start_label_studio("reconcile-label-studio")
    try:
        result = run(server, args.tasks, args.changed)
    finally:
        server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconcile.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def run(server: LocalLabelStudio, tasks: int, changed: int) -> dict[str, object]:
    settings = studio_settings(
        server,
        CACHE / "reconcile-service",
        public_url="http://127.0.0.1:9",  # nothing listens there: webhooks are lost
        reconcile_overlap_s=2.0,
        project_title="reconcile bench",
    )
    ctx = bench_context(settings)
    project_id = ensure_project(ctx)
    image_ids = _add_images(ctx, tasks)
    started = time.perf_counter()
    drafts = [
        TaskDraft(i, f"http://127.0.0.1:9/{i}.png", Suggestion("Coat", 0.5, "bench"))
        for i in image_ids
    ]
    task_ids = ctx.gateway.import_tasks(project_id, drafts)
    imported_s = time.perf_counter() - started
    print(f"imported {len(task_ids)} tasks in {imported_s:.1f}s", flush=True)
    time.sleep(settings.label_studio.reconcile_overlap_s + 1)
    first = reconcile(ctx)  # sets the watermark (a full read: there is none yet)
    assert first.full and first.tasks_seen == tasks, first
    _annotate(server.url, server.api_token, task_ids[:: max(1, tasks // changed)][:changed])
    time.sleep(1.0)

    started = time.perf_counter()
    incremental = reconcile(ctx)
    incremental_s = time.perf_counter() - started
    started = time.perf_counter()
    full = reconcile(ctx, full=True)
    full_s = time.perf_counter() - started
    assert not incremental.full and incremental.new == changed, incremental
    assert full.full and full.tasks_seen == tasks and full.unchanged == changed, full
    ratio = full_s / incremental_s
    print(f"incremental {incremental_s:.3f}s, full {full_s:.2f}s: {ratio:.0f}x", flush=True)
    return {
        "tasks": tasks,
        "changed": changed,
        "incremental_s": round(incremental_s, 4),
        "full_s": round(full_s, 3),
        "ratio": round(ratio, 1),
        "goal": "incremental_s <= full_s / 20",
        "goal_met": incremental_s <= full_s / 20,
        "incremental_tasks_read": incremental.tasks_seen,
        "full_tasks_read": full.tasks_seen,
        "import_s": round(imported_s, 1),
        "machine": platform.machine(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def _add_images(ctx: ServiceContext, count: int) -> list[int]:
    """Image rows for the tasks to name (no files: reconciliation never opens them)."""
    now = utcnow()
    with ctx.sessions() as session:
        session.execute(
            insert(Image),
            [
                {
                    "path": f"/bench/{i:06d}.png",
                    "sha256": f"{i:064x}",
                    "width": 28,
                    "height": 28,
                    "source": "folder",
                    "registered_at": now,
                }
                for i in range(count)
            ],
        )
        session.commit()
        return list(session.scalars(select(Image.id).order_by(Image.id)))


def _annotate(url: str, token: str, task_ids: list[int]) -> None:
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60
    ) as http:
        for task_id in task_ids:
            body = {"result": prediction_result("Bag"), "lead_time": 1.0}
            http.post(f"/api/tasks/{task_id}/annotations/", json=body).raise_for_status()


if __name__ == "__main__":
    main()
