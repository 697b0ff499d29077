"""Chaos soak: the mixed load for 10 minutes while the service and Label Studio are killed.

The service runs as `activelabel serve` under this script's supervision, on SQLite, beside
a real Label Studio, with the clients of `load.py` and the drivers of `mixed_load.py`
(registration of 5,000 images and its drift report, reconciliation every 10 s, a retrain and
a round every 30 s, annotations delivered at 20 per second). The soak kills the service with
SIGKILL at seeded random intervals of 20-60 s and starts it again, and once kills Label Studio
the same way and starts it on its data directory. Afterwards the service drains, reconciles
once in full, and the soak checks: every job finished (or failed with a code), every
delivered annotation stored exactly once, one task per image content in Label Studio,
`PRAGMA integrity_check`, and an audit entry for every stored annotation.
Writes `bench/results/soak.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import median
from typing import Any

from load import MACHINE
from load_jobs import STUDIO, start_clients
from mixed_load import Drivers
from mixed_stack import Stack, call, drain, job_report, start_stack, wait_job
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from studio_env import RESULTS
from tally import Tally, merge, percentiles

from labeling.gateway import LabelStudioGateway
from labeling.tasks import CONTENT_HASH_KEY
from service.audit.tables import AuditEntry
from service.core.db import make_engine, session_factory
from service.core.orm import Annotation

KILL_EVERY_S = (20.0, 60.0)
MIN_UPTIME_S = 5.0  # a restarted service serves at least this long before the next kill
DRAIN_S = 900.0


@dataclass
class Chaos:
    """The kills done so far and how long each restart took."""

    service_kills: int = 0
    studio_kills: int = 0
    restart_s: list[float] = field(default_factory=list)
    studio_restart_s: list[float] = field(default_factory=list)
    failed_starts: int = 0


def supervise(stack: Stack, deadline: float, rng: random.Random) -> Chaos:
    """Kill the service at random intervals and Label Studio once, restarting each."""
    chaos, now = Chaos(), time.monotonic()
    studio_at = now + (deadline - now) * rng.uniform(0.3, 0.7)
    next_kill = now + rng.uniform(*KILL_EVERY_S)
    while time.monotonic() < deadline:
        now = time.monotonic()
        if chaos.studio_kills == 0 and now >= studio_at:
            stack.studio.kill()
            chaos.studio_kills += 1
            time.sleep(1.0)
            started = time.monotonic()
            stack.studio.start(timeout_s=300)
            chaos.studio_restart_s.append(time.monotonic() - started)
            print(f"Label Studio killed and back in {chaos.studio_restart_s[-1]:.1f} s", flush=True)
        elif now >= next_kill:
            stack.service.kill()
            chaos.service_kills += 1
            time.sleep(0.5)
            restart(stack, chaos)
            print(f"kill {chaos.service_kills}: back in {chaos.restart_s[-1]:.1f} s", flush=True)
            next_kill = max(next_kill + rng.uniform(*KILL_EVERY_S), time.monotonic() + MIN_UPTIME_S)
        time.sleep(0.2)
    return chaos


def restart(stack: Stack, chaos: Chaos, *, tries: int = 3) -> None:
    """Start the service again (a failed start is counted and tried again)."""
    for _ in range(tries):
        try:
            chaos.restart_s.append(stack.service.start())
            return
        except RuntimeError:
            chaos.failed_starts += 1
            stack.service.kill()
    raise RuntimeError(f"the service did not start again; see {stack.service.log_path}")


def run(minutes: float, clients: int, seed: int) -> dict[str, Any]:
    stack = start_stack("soak")
    try:
        seconds = minutes * 60
        deadline = time.monotonic() + seconds
        drivers = Drivers(stack, deadline, seed=seed)
        drivers.start()
        tallies, threads = start_clients(stack, clients, deadline)
        chaos = supervise(stack, deadline, random.Random(seed))
        for thread in threads:
            thread.join(timeout=300)
        drivers.stop()
        settled = settle(stack)
        with stack.api() as api:
            jobs = job_report(api)
        logged = stack.log_counts()
        stack.service.stop()
        tasks, in_studio = check_tasks(stack)
        checks = tasks | check_annotations(stack, drivers.delivered, in_studio)
    finally:
        stack.close()
    checks["integrity_ok"] = integrity_ok(stack)
    return summary(tallies + drivers.tallies, chaos, jobs, checks, minutes, seed, logged | settled)


def settle(stack: Stack) -> dict[str, Any]:
    """Let the service drain, reconcile once in full, drain again; returns the seconds."""
    started = time.monotonic()
    drain(stack, DRAIN_S)
    outcome = "succeeded"
    with stack.api(600) as api:
        reconcile = call(api, "POST", "/v1/annotations/reconcile", json={"full": True})
        try:
            wait_job(api, reconcile, timeout_s=DRAIN_S)
        except RuntimeError as err:  # reported, and the checks below still run
            outcome = str(err)
    drain(stack, DRAIN_S)
    return {"final_reconcile": outcome, "settle_s": round(time.monotonic() - started, 1)}


def check_annotations(stack: Stack, delivered: set[int], in_studio: set[int]) -> dict[str, Any]:
    """Annotations delivered and in Label Studio against the rows stored (by Label Studio id)
    and the audit trail."""
    engine = make_engine(stack.settings.resolved_database_url, migrate=False)
    try:
        with session_factory(engine)() as session:
            rows = Counter(
                dict(
                    session.execute(
                        select(Annotation.studio_annotation_id, func.count())
                        .where(Annotation.project_id == stack.project_id)
                        .where(Annotation.deleted.is_(False))
                        .group_by(Annotation.studio_annotation_id)
                    ).all()
                )
            )
            audited = set(
                session.scalars(
                    select(AuditEntry.subject_id).where(
                        AuditEntry.subject_type == "annotation",
                        AuditEntry.action == "annotation.received",
                    )
                )
            )
    finally:
        engine.dispose()
    return {
        "annotations_delivered": len(delivered),
        "annotations_stored": sum(1 for i in delivered if rows.get(i)),
        "annotations_lost": sum(1 for i in delivered if not rows.get(i)),
        "annotations_duplicated": sum(n - 1 for n in rows.values()),
        "annotations_stored_in_all": sum(rows.values()),
        "annotations_in_studio": len(in_studio),
        "studio_annotations_not_stored": sum(1 for i in in_studio if not rows.get(i)),
        "stored_not_in_studio": sum(1 for i in rows if i not in in_studio),
        "audit_missing": sum(1 for i in rows if str(i) not in audited),
    }


def check_tasks(stack: Stack) -> tuple[dict[str, Any], set[int]]:
    """Tasks per image content (the hash in each task's meta) and per image id in Label Studio,
    and the ids of the annotations it holds."""
    gateway = LabelStudioGateway(stack.studio.url, stack.studio.api_token, timeout_s=600)
    try:
        tasks = gateway.list_tasks(stack.project_id)
    finally:
        gateway.close()
    hashes = [t.meta.get(CONTENT_HASH_KEY) for t in tasks]
    by_content = Counter(h for h in hashes if h)
    by_image = Counter(t.image_id for t in tasks)
    in_studio = {a.annotation_id for t in tasks for a in t.annotations}
    return {
        "tasks": len(tasks),
        "duplicate_tasks": sum(n - 1 for n in by_content.values()),
        "duplicate_tasks_by_image_id": sum(n - 1 for n in by_image.values()),
        "tasks_without_content_hash": sum(1 for h in hashes if not h),
    }, in_studio


def integrity_ok(stack: Stack) -> bool:
    """`PRAGMA integrity_check` on the service's SQLite file, once the service is stopped."""
    database = make_url(stack.settings.resolved_database_url).database
    with closing(sqlite3.connect(str(database))) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def summary(
    tallies: list[Tally],
    chaos: Chaos,
    jobs: dict[str, Any],
    checks: dict[str, Any],
    minutes: float,
    seed: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    service = merge(tallies, exclude=frozenset({STUDIO}))
    studio = merge(tallies, only={STUDIO})
    return {
        "minutes": minutes,
        "service_kills": chaos.service_kills,
        "studio_kills": chaos.studio_kills,
        "requests": service.requests,
        "server_errors": service.server_errors,
        "unanswered": service.unanswered,  # connections refused or cut by a kill
        "p99_ms": percentiles(service.answered)["p99_ms"],
        "jobs_unfinished": jobs["jobs_unfinished"],
        **checks,
        **extra,
        "restart_s_p50": round(float(median(chaos.restart_s)), 1) if chaos.restart_s else None,
        "restart_s_max": round(max(chaos.restart_s), 1) if chaos.restart_s else None,
        "studio_restart_s": [round(s, 1) for s in chaos.studio_restart_s],
        "failed_starts": chaos.failed_starts,
        "error_kinds": dict(service.errors),
        "error_samples": service.samples,
        "studio_errors": dict(studio.errors),
        "studio_annotation_ms": studio.per_kind.get(STUDIO),
        "deliveries_per_s": round(checks["annotations_delivered"] / (minutes * 60), 1),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "per_kind": service.per_kind,
        **jobs,
        "seed": seed,
        "machine": MACHINE,
        "python": platform.python_version(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def goals(result: dict[str, Any]) -> list[tuple[str, bool]]:
    minutes = result["minutes"]
    return [
        (f">= {minutes:g} service kills in {minutes:g} min", result["service_kills"] >= minutes),
        (">= 1 Label Studio kill", result["studio_kills"] >= 1),
        ("0 jobs unfinished", result["jobs_unfinished"] == 0),
        ("0 failed jobs without an error code", result["jobs_failed_without_code"] == 0),
        ("0 annotations lost", result["annotations_lost"] == 0),
        ("every annotation in Label Studio stored", result["studio_annotations_not_stored"] == 0),
        ("0 annotations duplicated", result["annotations_duplicated"] == 0),
        ("0 duplicate tasks", result["duplicate_tasks"] == 0),
        ("integrity check ok", result["integrity_ok"]),
        ("every stored annotation audited", result["audit_missing"] == 0),
        ("0 server errors answered", result["server_errors"] == 0),
        ("0 lock errors logged", result["lock_errors_logged"] == 0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    result = run(args.minutes, args.clients, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_kind"}, indent=2))
    for goal, ok in goals(result):
        print(f"{'PASS' if ok else 'FAIL'}: {goal}")


if __name__ == "__main__":
    main()
