"""`load.py --with-jobs`: the 32 clients of the load benchmark while the service's jobs run.

The clients ask for predictions, job status and image pages; the drivers of
`mixed_load.py` keep the jobs going for the whole window (registration of 5,000 images and
its drift report, reconciliation every 10 s, a retrain and a round every 30 s) and deliver
real annotations to the webhook at 20 per second. Counted: every request to the service,
its 5xx answers, the p99 latency, the lock errors in the service's log, and each job's
final status once the service has drained.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from load import MACHINE, WEIGHTS, Target, client_loop
from mixed_load import DELIVERIES_PER_S, Drivers
from mixed_stack import Stack, drain, job_report, start_stack
from tally import Tally, merge, percentiles

CLIENT_MIX = {kind: weight for kind, weight in WEIGHTS.items() if kind != "webhook"}
DRAIN_S = 900.0  # the jobs asked for in the window may still run after it
STUDIO = "studio"  # annotations created in Label Studio: not requests to the service


def run_with_jobs(clients: int, seconds: float) -> dict[str, Any]:
    stack = start_stack("load-jobs")
    try:
        tallies, drivers, elapsed = _window(stack, clients, seconds)
        drained_s = time.monotonic()
        drain(stack, DRAIN_S)
        drained_s = time.monotonic() - drained_s
        with stack.api() as api:
            jobs = job_report(api)
        logged = stack.log_counts()
    finally:
        stack.close()
    return summary(tallies, drivers, jobs, elapsed=elapsed, drained_s=drained_s, logged=logged)


def start_clients(
    stack: Stack, count: int, deadline: float
) -> tuple[list[Tally], list[threading.Thread]]:
    """`count` API clients (`load.client_loop` without webhooks) started until `deadline`."""
    target = Target(stack.service.url, stack.headers, stack.image_ids, stack.job_ids, stack.secret)
    tallies = [Tally() for _ in range(count)]
    threads = [
        threading.Thread(target=client_loop, args=(n, target, deadline, tallies[n], CLIENT_MIX))
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    return tallies, threads


def _window(stack: Stack, clients: int, seconds: float) -> tuple[list[Tally], Drivers, float]:
    """Clients and drivers together until the deadline; returns the tallies and the seconds."""
    started = time.monotonic()
    deadline = started + seconds
    drivers = Drivers(stack, deadline)
    drivers.start()
    tallies, threads = start_clients(stack, clients, deadline)
    for thread in threads:
        thread.join(timeout=seconds + 300)
    drivers.stop()
    return tallies, drivers, time.monotonic() - started


def summary(
    tallies: list[Tally],
    drivers: Drivers,
    jobs: dict[str, Any],
    *,
    elapsed: float,
    drained_s: float,
    logged: dict[str, int],
) -> dict[str, Any]:
    """The `with_jobs_*` fields of `load.json`, and the details under `with_jobs`."""
    every = tallies + drivers.tallies
    service = merge(every, exclude=frozenset({STUDIO}))
    studio = merge(drivers.tallies, only={STUDIO})
    overall = percentiles(service.answered)
    return {
        "with_jobs_requests": service.requests,
        "with_jobs_errors": sum(service.errors.values()),
        "with_jobs_server_errors": service.server_errors,
        "with_jobs_p99_ms": overall["p99_ms"],
        "with_jobs_p50_ms": overall["p50_ms"],
        **logged,
        "with_jobs_unfinished": jobs["jobs_unfinished"],
        "with_jobs": {
            "clients": len(tallies),
            "elapsed_s": round(elapsed, 1),
            "requests_per_s": round(overall["count"] / elapsed, 1),
            "per_kind": service.per_kind,
            "error_kinds": dict(service.errors),
            "error_samples": service.samples,
            "annotations_delivered": len(drivers.delivered),
            "deliveries_per_s": round(len(drivers.delivered) / elapsed, 1),
            "deliveries_per_s_goal": DELIVERIES_PER_S,
            "studio_annotation_requests": studio.requests,
            "studio_errors": dict(studio.errors),
            "studio_annotation_ms": studio.per_kind.get(STUDIO),
            "drain_s": round(drained_s, 1),
            "load_average": [round(x, 1) for x in os.getloadavg()],
            **jobs,
            "machine": MACHINE,
            "date": datetime.now(UTC).date().isoformat(),
        },
    }


def passed(result: dict[str, Any]) -> list[tuple[str, bool]]:
    """One line per goal of the with-jobs mode."""
    return [
        ("zero 5xx with jobs running", result["with_jobs_server_errors"] == 0),
        ("zero errors with jobs running", result["with_jobs_errors"] == 0),
        ("zero lock errors logged", result["lock_errors_logged"] == 0),
        ("zero 500s in the service's log", result["server_errors_logged"] == 0),
        ("every job finished with its status", result["with_jobs_unfinished"] == 0),
    ]
