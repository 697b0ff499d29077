"""Label Studio webhooks: check the secret, store the raw event, then apply it idempotently.

Label Studio never retries a delivery, so an event is committed before it is answered and
applied afterwards; one whose apply fails stays `pending` and the reconciliation job
applies it later (and re-reads what changed in any case).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from labeling.tasks import (
    StudioPrediction,
    annotation_record,
    int_or_none,
    prediction_record,
)
from service.context import ServiceContext
from service.core.errors import PayloadTooLarge, ServiceError
from service.core.orm import Annotation, utcnow
from service.core.settings import Settings
from service.studio.intake import (
    IntakeReport,
    chunked,
    delete_annotations,
    delete_tasks,
    store_annotations,
)
from service.studio.resolve import resolve_labels
from service.studio.tables import WebhookEvent

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Activelabel-Webhook-Secret"
WEBHOOK_PATH = "/v1/webhooks/label-studio"
MAX_ATTEMPTS = 5  # then the event is marked failed; reconciliation reads the same change anyway
CREATED_OR_UPDATED = {"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"}


class InvalidWebhookSecret(ServiceError):
    status_code, code = 401, "invalid_webhook_secret"


class InvalidWebhook(ServiceError):
    status_code, code = 400, "invalid_webhook"


class UnsupportedWebhookAction(ServiceError):
    status_code, code = 422, "unsupported_webhook_action"


class _Ref(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int = Field(ge=0, le=2**63 - 1)  # an id the database can hold


class WebhookBody(BaseModel):
    """The parts of a delivery the service relies on; everything else is kept as sent."""

    model_config = ConfigDict(extra="allow")
    action: str
    project: _Ref | None = None
    annotation: _Ref | list[_Ref] | None = None
    task: _Ref | list[_Ref] | None = None
    annotations: list[_Ref] | None = None
    tasks: list[_Ref] | None = None

    @model_validator(mode="after")
    def _has_what_the_action_needs(self) -> WebhookBody:
        needs = {"ANNOTATIONS_DELETED": ("annotations",), "TASKS_DELETED": ("tasks",)}
        needs.update({action: ("annotation", "task") for action in CREATED_OR_UPDATED})
        for name in needs.get(self.action, ()):
            if getattr(self, name) is None:
                raise ValueError(f"{self.action} needs `{name}`")
        return self


@dataclass(frozen=True)
class Received:
    event_id: int
    action: str
    duplicate: bool  # the same delivery was stored before: nothing new to apply


def webhook_secret(settings: Settings) -> str:
    """The shared secret: configured, or generated once into the data directory."""
    if settings.label_studio.webhook_secret is not None:
        return settings.label_studio.webhook_secret.get_secret_value()
    path = settings.data_dir / "webhook-secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def check_secret(expected: str, given: str | None) -> None:
    """Refuse a delivery whose secret header is missing or wrong (constant-time compare)."""
    if not expected or given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise InvalidWebhookSecret("the webhook secret header is missing or wrong")


def parse_body(body: bytes, *, max_bytes: int) -> WebhookBody:
    """A delivery's JSON checked for size and shape."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"webhook body of {len(body)} bytes exceeds {max_bytes}")
    try:
        parsed = WebhookBody.model_validate_json(body)
    except ValidationError as err:
        problems = [
            {"location": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in err.errors()
        ]
        raise InvalidWebhook(
            "the webhook body is not a Label Studio event", details=problems
        ) from None
    if parsed.action not in CREATED_OR_UPDATED | {"ANNOTATIONS_DELETED", "TASKS_DELETED"}:
        raise UnsupportedWebhookAction(f"webhook action {parsed.action!r} is not handled")
    return parsed


def receive(ctx: ServiceContext, body: bytes, parsed: WebhookBody) -> Received:
    """Store the raw delivery durably (committed) before it is answered."""
    digest = hashlib.sha256(body).hexdigest()
    payload = json.loads(body)
    with ctx.sessions() as session:
        event = WebhookEvent(
            body_sha256=digest,
            action=parsed.action,
            project_id=parsed.project.id if parsed.project else None,
            payload=payload,
        )
        session.add(event)
        try:
            session.commit()
            return Received(event.id, parsed.action, duplicate=False)
        except IntegrityError:
            session.rollback()
    with ctx.sessions() as session:
        known = session.scalar(select(WebhookEvent).where(WebhookEvent.body_sha256 == digest))
        if known is None:  # lost a race with a delete of the row: store it once more
            raise InvalidWebhook("the webhook could not be stored; send it again")
        return Received(known.id, known.action, duplicate=True)


def apply_event(ctx: ServiceContext, event_id: int) -> str:
    """Apply one stored event if still pending; returns its status afterwards.

    A failure is recorded on the event, which stays pending for the next retry.
    """
    with ctx.sessions() as session:
        event = session.get(WebhookEvent, event_id)
        if event is None or event.status != "pending":
            return event.status if event is not None else "missing"
        action, payload = event.action, dict(event.payload)
    try:
        shown = _shown_predictions(ctx, payload) if action in CREATED_OR_UPDATED else {}
        with ctx.sessions() as session:
            event = session.get(WebhookEvent, event_id)
            assert event is not None
            if event.status != "pending":
                return event.status
            report = IntakeReport()
            touched = _apply(session, ctx, action, payload, shown, report)
            report.labeled_images = resolve_labels(session, touched)
            event.status, event.applied_at = "applied", utcnow()
            event.attempts += 1
            session.commit()
        ctx.annotations_changed(touched)
        return "applied"
    except Exception as err:  # kept pending: reconciliation retries it
        log.warning("webhook event %s not applied yet: %s", event_id, err)
        with ctx.sessions() as session:
            event = session.get(WebhookEvent, event_id)
            if event is None:
                return "missing"
            event.attempts += 1
            event.error = f"{type(err).__name__}: {err}"[:2000]
            if event.attempts >= MAX_ATTEMPTS:  # kept for inspection; reconciliation re-reads
                event.status = "failed"
            session.commit()
            return event.status


def apply_pending(ctx: ServiceContext, *, limit: int = 10_000) -> int:
    """Apply stored events still pending, oldest first; returns how many were applied."""
    with ctx.sessions() as session:
        ids = list(
            session.scalars(
                select(WebhookEvent.id)
                .where(WebhookEvent.status == "pending")
                .order_by(WebhookEvent.id)
                .limit(limit)
            )
        )
    return sum(apply_event(ctx, event_id) == "applied" for event_id in ids)


def _apply(
    session: Any,
    ctx: ServiceContext,
    action: str,
    payload: dict[str, Any],
    shown: dict[int, StudioPrediction],
    report: IntakeReport,
) -> set[int]:
    if action == "ANNOTATIONS_DELETED":
        ids = [int(item["id"]) for item in payload["annotations"]]
        return delete_annotations(session, ids, report)
    if action == "TASKS_DELETED":
        return delete_tasks(session, [int(item["id"]) for item in payload["tasks"]], report)
    annotations = [
        annotation_record(
            item, int(task["id"]), int_or_none((task.get("data") or {}).get("image_id"))
        )
        for item, task in _annotations_with_tasks(payload)
    ]
    project_id = int_or_none((payload.get("project") or {}).get("id"))
    return store_annotations(
        session, annotations, guide=ctx.guide, shown=shown, report=report, project_id=project_id
    )


def _annotations_with_tasks(payload: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(annotation, its task) pairs of a created/updated event, single or bulk."""
    items = (
        payload["annotation"]
        if isinstance(payload["annotation"], list)
        else [payload["annotation"]]
    )
    tasks = payload["task"] if isinstance(payload["task"], list) else [payload["task"]]
    by_id = {int(task["id"]): task for task in tasks}
    pairs = []
    for item in items:
        task_id = int_or_none(item.get("task"))
        task = (
            by_id.get(task_id) if task_id is not None else (tasks[0] if len(tasks) == 1 else None)
        )
        if task is None:
            raise InvalidWebhook(f"annotation {item.get('id')} names no task of the event")
        pairs.append((item, task))
    return pairs


def _shown_predictions(ctx: ServiceContext, payload: dict[str, Any]) -> dict[int, StudioPrediction]:
    """The predictions annotators were shown: sent inline, stored before, or read from Studio."""
    found: dict[int, StudioPrediction] = {}
    wanted: set[int] = set()
    for item, _ in _annotations_with_tasks(payload):
        pid = int_or_none(item.get("parent_prediction"))
        inline = item.get("prediction")
        if pid is None:
            continue
        if isinstance(inline, dict) and int_or_none(inline.get("id")) == pid:
            found[pid] = prediction_record(inline)
        else:
            wanted.add(pid)
    with ctx.sessions() as session:
        for batch in chunked(sorted(wanted)):
            rows = session.execute(
                select(
                    Annotation.shown_prediction_id,
                    Annotation.shown_model_version,
                    Annotation.shown_label,
                ).where(
                    Annotation.shown_prediction_id.in_(batch),
                    Annotation.shown_model_version.is_not(None),
                )
            )
            found.update(
                (pid, StudioPrediction(pid, version, label)) for pid, version, label in rows
            )
    for pid in wanted - set(found):
        prediction = ctx.gateway.get_prediction(pid)
        if prediction is not None:
            found[pid] = prediction
    return found
