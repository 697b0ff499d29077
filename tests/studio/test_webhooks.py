"""The webhook endpoint: secret checked, bad bodies refused, events stored then applied once."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from starlette.types import Message

from service.core.db import lock_for_writing
from service.core.orm import Annotation, Image
from service.core.settings import LabelStudioSettings
from service.studio.tables import WebhookEvent
from service.studio.webhooks import SECRET_HEADER, apply_event, parse_body, receive
from tests.helpers import ImagePool, api_client, make_settings
from tests.service.test_metrics import samples
from tests.studio.conftest import add_images

SECRET = "a-shared-webhook-secret"
URL = "/v1/webhooks/label-studio"
HEADERS = {SECRET_HEADER: SECRET}


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool) -> Iterator[TestClient]:
    """The service with Label Studio unreachable: webhooks must not need it."""
    studio = LabelStudioSettings(
        url="http://127.0.0.1:9",
        api_key=SecretStr("0" * 40),
        timeout_s=2,
        webhook_secret=SecretStr(SECRET),
        webhook_max_bytes=64 * 1024,
        reconcile_every_s=0,
    )
    with api_client(make_settings(tmp_path, fashion_pool, label_studio=studio)) as client:
        yield client


@pytest.fixture
def image_id(client: TestClient) -> int:
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        return add_images(session, 1)[0]


def created(
    annotation_id: int,
    image_id: int,
    label: str,
    *,
    updated: str = "2026-11-28T01:27:02.994644Z",
    action: str = "ANNOTATION_CREATED",
    prediction: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An annotation event shaped as Label Studio 1.23 sends it (fields the service ignores cut)."""
    task_id = 500 + image_id
    return {
        "action": action,
        "annotation": {
            "id": annotation_id,
            "result": [
                {
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [label]},
                }
            ],
            "was_cancelled": False,
            "created_at": "2026-11-28T01:27:02.994594Z",
            "updated_at": updated,
            "lead_time": 2.5,
            "prediction": prediction or {},
            "task": task_id,
            "project": 1,
            "completed_by": 2,
            "parent_prediction": prediction["id"] if prediction else None,
        },
        "task": {"id": task_id, "data": {"image": "http://x/1.png", "image_id": image_id}},
        "project": {"id": 1, "title": "activelabel"},
    }


def send(client: TestClient, body: dict[str, Any] | bytes, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(URL, content=content, headers={**HEADERS, **headers})


def rows(client: TestClient) -> list[Annotation]:
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(Annotation).order_by(Annotation.id)))


def events(client: TestClient) -> list[WebhookEvent]:
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def test_an_event_is_stored_then_applied_with_the_prediction_shown(
    client: TestClient, image_id: int
) -> None:
    prediction = {
        "id": 9,
        "model_version": "h-0123456789",
        "result": [
            {
                "from_name": "label",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": ["Coat"]},
            }
        ],
    }
    response = send(client, created(1, image_id, "Bag", prediction=prediction))
    assert response.status_code == 202, response.text
    assert response.json()["duplicate"] is False
    (row,) = rows(client)
    assert (row.label, row.annotator, row.lead_time) == ("Bag", 2, 2.5)
    assert (row.shown_prediction_id, row.shown_model_version, row.shown_label) == (
        9,
        "h-0123456789",
        "Coat",
    )
    assert [e.status for e in events(client)] == ["applied"]
    listed = client.get("/v1/annotations", params={"image_id": image_id}).json()["items"]
    assert [(a["label"], a["shown_label"], a["guide_version"]) for a in listed] == [
        ("Bag", "Coat", row.guide_version)
    ]


def test_a_missing_or_forged_secret_is_refused_and_nothing_is_stored(
    client: TestClient, image_id: int
) -> None:
    body = json.dumps(created(1, image_id, "Bag")).encode()
    missing = client.post(URL, content=body)
    forged = client.post(URL, content=body, headers={SECRET_HEADER: SECRET[:-1] + "X"})
    for response in (missing, forged):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_webhook_secret"
    assert events(client) == [] and rows(client) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"\x00\xffnot json", 400, "invalid_webhook"),
        (b"[1, 2, 3]", 400, "invalid_webhook"),
        (
            json.dumps({"action": "ANNOTATION_CREATED", "task": {"id": 1}}).encode(),
            400,
            "invalid_webhook",
        ),
        (
            json.dumps({"action": "TASKS_DELETED", "tasks": [{"id": "x"}]}).encode(),
            400,
            "invalid_webhook",
        ),
        (
            json.dumps({"action": "PROJECT_UPDATED", "project": {"id": 1}}).encode(),
            422,
            "unsupported_webhook_action",
        ),
        (
            b'{"action": "TASKS_DELETED", "tasks": [], "pad": "' + b"x" * 70_000 + b'"}',
            413,
            "payload_too_large",
        ),
    ],
)
def test_garbage_and_oversized_bodies_get_a_4xx_with_a_stable_code(
    client: TestClient, body: bytes, status: int, code: str
) -> None:
    response = send(client, body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert events(client) == []


def test_replayed_and_reordered_events_never_undo_a_newer_state(
    client: TestClient, image_id: int
) -> None:
    first = created(1, image_id, "Bag")
    edit = created(1, image_id, "Coat", updated="2026-11-28T01:30:00Z", action="ANNOTATION_UPDATED")
    assert send(client, edit).status_code == 202  # the edit arrives first
    assert send(client, first).status_code == 202  # then the older creation
    replay = send(client, edit)
    assert replay.status_code == 202 and replay.json()["duplicate"] is True
    (row,) = rows(client)
    assert row.label == "Coat"
    assert len(events(client)) == 2
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        assert session.get(Image, image_id).label == "Coat"


def test_unknown_labels_are_stored_as_rejected(client: TestClient, image_id: int) -> None:
    assert send(client, created(1, image_id, "Hat")).status_code == 202
    (row,) = rows(client)
    assert (row.status, row.problem_code, row.label) == ("rejected", "unknown_label", None)


def test_deleted_annotations_and_tasks_are_flagged_and_the_label_re_resolved(
    client: TestClient, image_id: int
) -> None:
    send(client, created(1, image_id, "Bag"))
    send(client, created(2, image_id, "Coat", updated="2026-11-28T01:29:00Z"))
    deleted = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 2}], "project": {"id": 1}}
    assert send(client, deleted).status_code == 202
    assert [(r.studio_annotation_id, r.deleted) for r in rows(client)] == [(1, False), (2, True)]
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        assert session.get(Image, image_id).label == "Bag"
    gone = {"action": "TASKS_DELETED", "tasks": [{"id": 500 + image_id}], "project": {"id": 1}}
    assert send(client, gone).status_code == 202
    assert all(r.deleted for r in rows(client))
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        assert session.get(Image, image_id).label is None


def test_an_event_that_cannot_be_applied_yet_stays_pending(
    client: TestClient, image_id: int
) -> None:
    """The shown prediction must be read from Label Studio, which is down: nothing is lost."""
    body = created(1, image_id, "Bag")
    body["annotation"]["parent_prediction"] = 41  # not sent inline, never seen before
    assert send(client, body).status_code == 202
    (event,) = events(client)
    assert (event.status, event.attempts) == ("pending", 1)
    assert "LabelStudioUnavailable" in (event.error or "")
    assert rows(client) == []


def test_reconciliation_is_one_job_per_project_however_often_it_is_asked_for(
    client: TestClient,
) -> None:
    first = client.post("/v1/annotations/reconcile")
    again = client.post("/v1/annotations/reconcile", json={"full": False})
    assert first.status_code == again.status_code == 202, first.text
    assert again.json()["job_id"] == first.json()["job_id"]  # retried while Studio is down
    job = client.get(first.json()["status_url"]).json()
    assert job["kind"] == "reconcile" and job["params"] == {"full": False}


def test_annotations_from_webhooks_are_in_the_audit_trail_and_its_export(
    client: TestClient, image_id: int
) -> None:
    send(client, created(1, image_id, "Bag"))
    send(client, created(1, image_id, "Bag", action="ANNOTATION_UPDATED"))  # nothing changed
    edit = created(1, image_id, "Coat", updated="2026-11-28T01:30:00Z", action="ANNOTATION_UPDATED")
    send(client, edit)
    query = {"subject_type": "annotation", "subject_id": "1"}
    trail = client.get("/v1/audit", params=query).json()["items"]
    assert [(e["action"], e["actor"], e["after"]["label"]) for e in trail] == [
        ("annotation.received", "studio-user:2", "Bag"),
        ("annotation.updated", "studio-user:2", "Coat"),
    ]
    assert (trail[0]["after"]["task_id"], trail[0]["after"]["image_id"]) == (
        500 + image_id,
        image_id,
    )
    (received,) = client.get("/v1/audit", params={"action": "annotation.received"}).json()["items"]
    assert received["id"] == trail[0]["id"]
    export = client.get("/v1/audit/export", params={"actor": "studio-user:2"})
    assert [json.loads(line)["id"] for line in export.text.splitlines()] == [e["id"] for e in trail]
    assert SECRET not in export.text


def test_two_events_of_one_annotation_applied_at_once_store_it_once_and_log_no_error(
    client: TestClient, image_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The creation and an update with the same state, applied while both wait for the lock."""
    context = client.app.state.context  # type: ignore[attr-defined]
    stored = []
    for action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        body = json.dumps(created(1, image_id, "Bag", action=action)).encode()
        stored.append(receive(context, body, parse_body(body, max_bytes=64 * 1024)).event_id)
    outcomes: dict[int, str] = {}

    def apply(event_id: int) -> None:
        outcomes[event_id] = apply_event(context, event_id)

    caplog.set_level(logging.INFO)
    with context.sessions() as blocker:
        lock_for_writing(blocker)  # both look, then wait for the write lock
        threads = [threading.Thread(target=apply, args=(event_id,)) for event_id in stored]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == dict.fromkeys(stored, "applied")
    assert [r.studio_annotation_id for r in rows(client)] == [1]
    trail = client.get("/v1/audit", params={"subject_type": "annotation"}).json()["items"]
    assert [e["action"] for e in trail] == ["annotation.received"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_sender_that_disconnects_mid_body_gets_400_and_nothing_is_stored(
    client: TestClient, image_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A real ASGI call whose body stream ends in `http.disconnect` (the sender gave up)."""
    body = json.dumps(created(1, image_id, "Bag")).encode()
    incoming: list[Message] = [
        {"type": "http.request", "body": body[:40], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive_message() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send_message(message: Message) -> None:
        sent.append(message)

    headers = [(SECRET_HEADER.lower().encode(), SECRET.encode())]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    failed_before = server_errors(client)
    caplog.set_level(logging.INFO)
    asyncio.run(client.app(scope, receive_message, send_message))  # type: ignore[arg-type]

    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    answer = json.loads(
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    )
    assert (start["status"], answer["error"]["code"]) == (400, "client_disconnected")
    assert events(client) == [] and rows(client) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("disconnected" in r.getMessage() for r in caplog.records)
    assert server_errors(client) == failed_before


def server_errors(client: TestClient) -> float:
    """How many webhook deliveries the service has answered with a 500 so far."""
    labels = (("method", "POST"), ("route", URL), ("status", "500"))
    return samples(client.get("/metrics").text).get(("activelabel_http_requests_total", labels), 0)
