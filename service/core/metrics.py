"""Process-wide metrics of events (jobs, Label Studio calls); `/metrics` exposes them.

Anything in the service may observe here; what is read from the database (images per state,
labels, acceptance) is computed when `/metrics` is scraped instead (`api/metrics.py`).
"""

from __future__ import annotations

import re
import time

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

JOB_SECONDS = Histogram(
    "activelabel_job_duration_seconds",
    "How long jobs ran, by kind and outcome (succeeded, failed, cancelled, interrupted).",
    ["kind", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, float("inf")),
    registry=REGISTRY,
)
STUDIO_SECONDS = Histogram(
    "activelabel_label_studio_request_duration_seconds",
    "Latency of HTTP calls to Label Studio, by method and path template.",
    ["method", "path"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf")),
    registry=REGISTRY,
)
STUDIO_ERRORS = Counter(
    "activelabel_label_studio_errors_total",
    "Label Studio calls that failed: `unreachable`, `timeout` or the HTTP status (4xx/5xx).",
    ["method", "path", "error"],
    registry=REGISTRY,
)


def observe_job(kind: str, outcome: str, seconds: float) -> None:
    """Record one finished job (call once per run, whatever its outcome)."""
    JOB_SECONDS.labels(kind, outcome).observe(max(seconds, 0.0))


_ID = re.compile(r"/\d+(?=/|$)")


def path_template(path: str) -> str:
    """`/api/projects/12/tasks/` -> `/api/projects/{id}/tasks/`: one series per endpoint."""
    return _ID.sub("/{id}", path)


class ObservedTransport(httpx.BaseTransport):
    """An httpx transport that times every request and counts failures, then delegates."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, path_template(request.url.path)
        started = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except httpx.TimeoutException:
            STUDIO_ERRORS.labels(method, path, "timeout").inc()
            raise
        except httpx.TransportError:
            STUDIO_ERRORS.labels(method, path, "unreachable").inc()
            raise
        finally:
            STUDIO_SECONDS.labels(method, path).observe(time.perf_counter() - started)
        if response.status_code >= 400:
            STUDIO_ERRORS.labels(method, path, str(response.status_code)).inc()
        return response

    def close(self) -> None:
        self._inner.close()
