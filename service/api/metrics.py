"""`/metrics` for Prometheus: requests by route, and what the database says at scrape time.

Request counts and latency are labelled by route template (`/v1/images/{image_id}`), never
by raw path, so that ids cannot multiply the series. Images per state, labels and the
suggestion acceptance rate are counted when scraped: a few indexed aggregate queries.
Job durations, Label Studio latency and embedding rates come from `service.core.metrics`; GPU
utilisation and memory from `service.core.gpu_metrics` (when NVML is there).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from service.api.deps import ContextDep, SessionDep
from service.auth.roles import Role, requires
from service.core.metrics import REGISTRY
from service.core.orm import Annotation, Image, utcnow

REQUESTS = Counter(
    "activelabel_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "activelabel_http_request_duration_seconds",
    "Time to answer HTTP requests, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, float("inf")),
    registry=REGISTRY,
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route, str(status)).observe(seconds)


class DatabaseCollector(Collector):
    """Gauges read from the database when scraped (one session, a few aggregate queries)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def collect(self) -> Iterator[Metric]:
        yield self._images_by_state()
        yield from self._labels()
        yield self._acceptance()

    def _images_by_state(self) -> Metric:
        state = case(
            (Image.unusable_reason.is_not(None), "unusable"),
            (Image.label.is_not(None), "labeled"),
            else_="unlabeled",
        )
        rows = self._session.execute(select(state, func.count()).group_by(state)).all()
        counts = {name: count for name, count in rows}
        gauge = GaugeMetricFamily(
            "activelabel_images", "Images in the pool by state.", labels=["state"]
        )
        for name in ("unlabeled", "labeled", "unusable"):
            gauge.add_metric([name], counts.get(name, 0))
        return gauge

    def _labels(self) -> Iterator[Metric]:
        by_source = self._session.execute(
            select(Image.label_source, func.count())
            .where(Image.label.is_not(None))
            .group_by(Image.label_source)
        ).all()
        total = CounterMetricFamily(
            "activelabel_labels",
            "Confirmed labels by source (seed, annotation); rate() gives labels per hour.",
            labels=["source"],
        )
        for source, count in by_source:
            total.add_metric([source or "unknown"], count)
        yield total
        hour_ago = utcnow() - timedelta(hours=1)
        recent = self._session.scalar(
            select(func.count()).where(Image.label.is_not(None), Image.labeled_at >= hour_ago)
        )
        yield GaugeMetricFamily(
            "activelabel_labels_last_hour", "Labels confirmed in the last hour.", value=recent or 0
        )

    def _acceptance(self) -> Metric:
        shown = select(
            func.count(),
            func.sum(case((Annotation.label == Annotation.shown_label, 1), else_=0)),
        ).where(
            Annotation.status == "accepted",
            Annotation.deleted.is_(False),
            Annotation.shown_label.is_not(None),
        )
        answered, unchanged = self._session.execute(shown).one()
        rate = float(unchanged or 0) / answered if answered else float("nan")
        return GaugeMetricFamily(
            "activelabel_suggestion_acceptance_ratio",
            "Of accepted annotations made with a suggestion shown, the share that kept its "
            "label unchanged (NaN before the first).",
            value=rate,
        )


router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
@requires(Role.pipeline, Role.reviewer, Role.viewer)
def metrics(context: ContextDep, session: SessionDep) -> Response:
    """Prometheus text exposition: process metrics, then the database's and GPUs', read now."""
    now = CollectorRegistry(auto_describe=False)
    now.register(DatabaseCollector(session))
    now.register(context.gpu_metrics)
    body = exposition(REGISTRY) + exposition(now)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
