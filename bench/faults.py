"""Fault scenarios: the service, Label Studio or clients fail mid-work; nothing is lost or doubled.

(a) `kill -9` the service while 4 annotator accounts submit 200 annotations in a real Label
    Studio, start it again, reconcile: exactly 200 annotations are stored, with the right labels.
(b), (c) `kill -9` Label Studio mid-push of a 2,000-image round; re-pushes racing a running
    round: one task per image (in `faults_push.py`).

Each scenario is a function in `SCENARIOS`; `--only a` runs one. Results are merged into
`bench/results/faults.json` (per scenario under `scenarios`, totals at the top level).
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx
from faults_push import scenario_b, scenario_c
from pydantic import SecretStr
from sqlalchemy import insert, select
from studio_env import (
    CACHE,
    RESULTS,
    ServiceProcess,
    bench_context,
    start_label_studio,
    studio_settings,
)

from labeling.accounts import AnnotatorAccount
from labeling.local_server import LocalLabelStudio, free_loopback_port
from labeling.tasks import Suggestion, TaskDraft, prediction_result
from service.auth.keys import create_key
from service.context import ServiceContext
from service.core.orm import Annotation, Image, utcnow
from service.core.settings import AnnotatorSettings
from service.studio.annotators import provision_annotators
from service.studio.project import ensure_project

ANNOTATORS, ANNOTATIONS, KILL_AFTER = 4, 200, 60


def scenario_a(server: LocalLabelStudio, _stack: ExitStack) -> dict[str, Any]:
    """Kill -9 the service while annotators submit; restart; reconcile; count and check."""
    port = free_loopback_port()
    settings = studio_settings(
        server,
        CACHE / "faults-a-service",
        public_url=f"http://127.0.0.1:{port}",
        project_title=f"faults a {uuid.uuid4().hex[:6]}",
        reconcile_every_s=0,  # reconciliation on demand only, to count what webhooks alone did
        annotators=[
            AnnotatorSettings(
                email=f"faults-annotator-{i}@example.com", password=SecretStr(f"annotator-{i}-pw")
            )
            for i in range(ANNOTATORS)
        ],
    )
    ctx = bench_context(settings)
    project_id, tasks = _project(ctx, ANNOTATIONS)
    accounts = provision_annotators(ctx, server.set_password)
    with ctx.sessions() as session:
        api_key = create_key(session, "faults").token.get_secret_value()
    service = ServiceProcess(settings, port, CACHE / "faults-a-service" / "service.log")
    try:
        submitted, killed_at, restart_s = _annotate_through_a_crash(
            service, api_key, server.url, accounts, tasks
        )
        via_webhooks = _stored(ctx, project_id)
        job = _reconcile(service.url, api_key)
    finally:
        service.stop()
    return _check(ctx, project_id, tasks, submitted, via_webhooks, job, killed_at, restart_s)


def _annotate_through_a_crash(
    service: ServiceProcess,
    api_key: str,
    studio_url: str,
    accounts: list[AnnotatorAccount],
    tasks: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], int, float]:
    """Annotators submit while the service is killed and restarted; (submitted, killed at, s)."""
    service.start()
    first = _reconcile(service.url, api_key)  # sets the watermark, as the periodic job would
    assert first["status"] == "succeeded", first
    submitted: list[dict[str, Any]] = []
    share = len(accounts)
    threads = [
        threading.Thread(target=_submit, args=(studio_url, a, tasks[i::share], submitted))
        for i, a in enumerate(accounts)
    ]
    for thread in threads:
        thread.start()
    while len(submitted) < KILL_AFTER and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    service.kill()
    killed_at = len(submitted)
    time.sleep(1.0)
    restart_s = service.start()
    for thread in threads:
        thread.join()
    return submitted, killed_at, restart_s


def _project(ctx: ServiceContext, count: int) -> tuple[int, list[dict[str, Any]]]:
    """The service's project with one task per new image; each task knows its right label."""
    now = utcnow()
    with ctx.sessions() as session:
        first = (session.scalar(select(Image.id).order_by(Image.id.desc()).limit(1)) or 0) + 1
        rows = [
            {
                "path": f"/faults/{first + i:06d}.png",
                "sha256": uuid.uuid4().hex * 2,
                "width": 28,
                "height": 28,
                "source": "folder",
                "registered_at": now,
            }
            for i in range(count)
        ]
        session.execute(insert(Image), rows)
        session.commit()
        image_ids = list(session.scalars(select(Image.id).where(Image.id >= first)))
    project_id = ensure_project(ctx)  # registers the webhook to the service's port
    drafts = [
        TaskDraft(i, f"http://127.0.0.1:9/{i}.png", Suggestion("Coat", 0.4, "faults"))
        for i in image_ids
    ]
    task_ids = ctx.gateway.import_tasks(project_id, drafts)
    shown = {t.task_id: t.predictions[0].prediction_id for t in ctx.gateway.list_tasks(project_id)}
    labels = ctx.guide.label_names
    return project_id, [
        {"task": t, "image": i, "prediction": shown[t], "label": labels[k % len(labels)]}
        for k, (t, i) in enumerate(zip(task_ids, image_ids, strict=True))
    ]


def _submit(
    url: str, account: AnnotatorAccount, tasks: list[dict[str, Any]], done: list[dict[str, Any]]
) -> None:
    """One annotator labels its share of the tasks over Label Studio's API, as a browser would."""
    headers = {"Authorization": f"Token {account.token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for task in tasks:
            body = {
                "result": prediction_result(task["label"]),
                "lead_time": 1.5,
                "parent_prediction": task["prediction"],
            }
            response = http.post(f"/api/tasks/{task['task']}/annotations/", json=body)
            response.raise_for_status()
            done.append({**task, "annotation": response.json()["id"], "user": account.user_id})
            time.sleep(0.02)


def _stored(ctx: ServiceContext, project_id: int) -> int:
    with ctx.sessions() as session:
        query = select(Annotation.id).where(
            Annotation.project_id == project_id, Annotation.deleted.is_(False)
        )
        return len(list(session.scalars(query)))


def _reconcile(url: str, api_key: str, *, timeout_s: float = 300) -> dict[str, Any]:
    """Ask the restarted service to reconcile and wait for its job."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    ) as http:
        accepted = http.post("/v1/annotations/reconcile").raise_for_status().json()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = http.get(accepted["status_url"]).raise_for_status().json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return dict(job)
            time.sleep(0.5)
    raise RuntimeError("the reconciliation job did not finish")


def _check(
    ctx: ServiceContext,
    project_id: int,
    tasks: list[dict[str, Any]],
    submitted: list[dict[str, Any]],
    via_webhooks: int,
    job: dict[str, Any],
    killed_at: int,
    restart_s: float,
) -> dict[str, Any]:
    with ctx.sessions() as session:
        rows = list(
            session.scalars(
                select(Annotation).where(
                    Annotation.project_id == project_id, Annotation.deleted.is_(False)
                )
            )
        )
    expected = {s["annotation"]: (s["label"], s["user"], s["prediction"]) for s in submitted}
    stored = {r.studio_annotation_id: (r.label, r.annotator, r.shown_prediction_id) for r in rows}
    per_image = Counter(t.image_id for t in ctx.gateway.list_tasks(project_id))
    result = {
        "annotations_submitted": len(submitted),
        "annotations_stored": len(rows),
        "stored_by_webhook_before_reconcile": via_webhooks,
        "wrong_or_missing": sum(stored.get(k) != v for k, v in expected.items()),
        "killed_after_submissions": killed_at,
        "restart_s": round(restart_s, 1),
        "reconcile_job": {k: job.get(k) for k in ("status", "error")},
        "reconcile_result": {
            k: (job.get("result") or {}).get(k)
            for k in ("full", "tasks_seen", "events_applied", "new", "updated", "unchanged")
        },
        "duplicate_tasks": sum(n - 1 for n in per_image.values()),
        "max_tasks_per_image": max(per_image.values()),
        "tasks": len(tasks),
    }
    result["passed"] = (
        job.get("status") == "succeeded"
        and len(submitted) == ANNOTATIONS == len(rows)
        and result["wrong_or_missing"] == 0
        and result["max_tasks_per_image"] == 1
    )
    return result


Scenario = Callable[[LocalLabelStudio, ExitStack], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {"a": scenario_a, "b": scenario_b, "c": scenario_c}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    path = RESULTS / "faults.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    scenarios: dict[str, Any] = results.get("scenarios", {})
    with ExitStack() as stack:  # what scenarios share is closed before Label Studio stops
        server = start_label_studio("faults-label-studio")
        stack.callback(server.stop)
        for name in args.only or sorted(SCENARIOS):
            print(f"scenario {name}: {SCENARIOS[name].__doc__}", flush=True)
            scenarios[name] = SCENARIOS[name](server, stack)
            print(json.dumps(scenarios[name], indent=2), flush=True)
            RESULTS.mkdir(exist_ok=True)
            path.write_text(json.dumps(summary(scenarios), indent=2) + "\n")


def summary(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Totals over the scenarios run so far, and each scenario's own figures."""
    return {
        "annotations_submitted": sum(s.get("annotations_submitted", 0) for s in scenarios.values()),
        "annotations_stored": sum(s.get("annotations_stored", 0) for s in scenarios.values()),
        "duplicate_tasks": sum(s.get("duplicate_tasks", 0) for s in scenarios.values()),
        "max_tasks_per_image": max(
            (s.get("max_tasks_per_image", 0) for s in scenarios.values()), default=0
        ),
        "scenarios_passed": {name: bool(s.get("passed")) for name, s in sorted(scenarios.items())},
        "scenarios": scenarios,
        "machine": platform.machine(),
        "date": datetime.now(UTC).date().isoformat(),
    }


if __name__ == "__main__":
    main()
