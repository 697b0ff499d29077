"""Process-wide metrics of events (jobs, Label Studio calls, embedding runs): `/metrics`.

Anything in the service may observe here; what is read from the database (images per state,
labels, acceptance) is computed when `/metrics` is scraped instead (`api/metrics.py`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
# Embedding runs (the work of scoring a pool), labelled by the path they took.
EMBEDDING_LABELS = ["device", "precision", "runtime", "decoder"]
RECENT_RUNS = 8
IMAGES_EMBEDDED = Counter(
    "activelabel_images_embedded_total",
    "Images embedded, by device, precision, runtime and decoder (`device`: decoded on the GPU).",
    EMBEDDING_LABELS,
    registry=REGISTRY,
)
EMBEDDING_SECONDS = Counter(
    "activelabel_embedding_seconds_total",
    "Seconds spent in embedding runs; rate(images) / rate(seconds) is their images per second.",
    EMBEDDING_LABELS,
    registry=REGISTRY,
)
EMBEDDING_RATE = Gauge(
    "activelabel_embedding_images_per_second",
    f"Images embedded per second over the last {RECENT_RUNS} embedding runs on this path "
    "(their images over their seconds, decoding and model together).",
    EMBEDDING_LABELS,
    registry=REGISTRY,
)


class RecentRate:
    """Images per second over the last ``runs`` runs: their images over their seconds.

    Each run counts by its seconds, so a one-image run (a Label Studio `/predict`) moves
    the figure little beside one over a pool of thousands.
    """

    def __init__(self, runs: int = RECENT_RUNS) -> None:
        self._runs: deque[tuple[int, float]] = deque(maxlen=runs)
        self._lock = threading.Lock()

    def add(self, images: int, seconds: float) -> float:
        """Record one run; returns the rate over the runs kept (0 before any time passed)."""
        with self._lock:
            self._runs.append((images, max(seconds, 0.0)))
            total = sum(seconds for _, seconds in self._runs)
            return sum(images for images, _ in self._runs) / total if total > 0 else 0.0


_recent: dict[tuple[str, ...], RecentRate] = {}
_recent_lock = threading.Lock()


def observe_embedding(labels: tuple[str, str, str, str], images: int, seconds: float) -> None:
    """Record one embedding run: ``labels`` are (device, precision, runtime, decoder)."""
    with _recent_lock:
        recent = _recent.setdefault(labels, RecentRate())
    IMAGES_EMBEDDED.labels(*labels).inc(images)
    EMBEDDING_SECONDS.labels(*labels).inc(max(seconds, 0.0))
    EMBEDDING_RATE.labels(*labels).set(recent.add(images, seconds))


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
