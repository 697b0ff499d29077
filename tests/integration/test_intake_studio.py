"""Annotations made over Label Studio's API reach the service by webhook or by reconciliation."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select

from labeling.local_server import LocalLabelStudio, free_loopback_port
from labeling.tasks import Suggestion, TaskDraft
from service.api.app import create_app
from service.context import ServiceContext
from service.core.orm import Annotation, Image
from service.core.settings import AnnotatorSettings, LabelStudioSettings
from service.studio.annotators import provision_annotators
from service.studio.project import ensure_project
from service.studio.reconcile import reconcile
from service.studio.tables import ReconcileState
from tests.helpers import ImagePool, make_settings
from tests.integration.studio_http import StudioClient
from tests.studio.conftest import add_images

pytestmark = pytest.mark.integration
MODEL = "h-webhooktest"


@pytest.fixture
def live(
    tmp_path: Path, fashion_pool: ImagePool, label_studio: LocalLabelStudio
) -> Iterator[ServiceContext]:
    """The service on a real loopback port, so that Label Studio can deliver its webhooks."""
    port = free_loopback_port()
    studio = LabelStudioSettings(
        url=label_studio.url,
        api_key=SecretStr(label_studio.api_token),
        project_title=f"intake {uuid.uuid4().hex[:10]}",
        webhook_secret=SecretStr(uuid.uuid4().hex),
        reconcile_every_s=0,
        reconcile_overlap_s=0.5,
        annotators=[
            AnnotatorSettings(
                email=f"annotator-{uuid.uuid4().hex[:8]}@example.com",
                password=SecretStr("annotator-password-1"),
            )
        ],
    )
    settings = make_settings(
        tmp_path, fashion_pool, label_studio=studio, public_url=f"http://127.0.0.1:{port}"
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait(lambda: server.started, "the service to start", timeout_s=120)
    try:
        yield app.state.context
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Annotator:
    user_id: int
    client: StudioClient


@pytest.fixture
def annotator(label_studio: LocalLabelStudio, live: ServiceContext) -> Iterator[Annotator]:
    """The configured annotator: a Label Studio user with a password and a token of its own."""
    (account,) = provision_annotators(live, label_studio.set_password)
    assert provision_annotators(live, label_studio.set_password)[0].user_id == account.user_id
    client = StudioClient(label_studio.url, account.token)
    try:
        yield Annotator(account.user_id, client)
    finally:
        client.close()


def _wait(done: Callable[[], Any], what: str, *, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := done():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _project_with_tasks(ctx: ServiceContext, count: int) -> tuple[int, list[dict[str, Any]]]:
    """The service's project with `count` tasks of new images: [{task, image, prediction}]."""
    with ctx.sessions() as session:
        image_ids = add_images(session, count)
    project_id = ensure_project(ctx)
    drafts = [
        TaskDraft(i, f"http://127.0.0.1:9/{i}.png", Suggestion("Coat", 0.4, MODEL))
        for i in image_ids
    ]
    task_ids = ctx.gateway.import_tasks(project_id, drafts)
    predictions = {
        t.task_id: t.predictions[0].prediction_id for t in ctx.gateway.list_tasks(project_id)
    }
    return project_id, [
        {"task": t, "image": i, "prediction": predictions[t]}
        for t, i in zip(task_ids, image_ids, strict=True)
    ]


def _rows(ctx: ServiceContext) -> dict[int, Annotation]:
    with ctx.sessions() as session:
        return {r.studio_annotation_id: r for r in session.scalars(select(Annotation))}


def test_annotations_arrive_by_webhook_with_annotator_and_shown_prediction(
    live: ServiceContext, annotator: Annotator, studio: StudioClient
) -> None:
    project_id, tasks = _project_with_tasks(live, 2)
    ensure_project(live)  # reusing the project registers no second webhook
    hooks = studio.http.get("/api/webhooks/", params={"project": project_id}).json()
    assert len([h for h in hooks if h["project"] == project_id]) == 1

    made = annotator.client.annotate(
        tasks[0]["task"], "Bag", parent_prediction=tasks[0]["prediction"]
    )
    row = _wait(lambda: _rows(live).get(made["id"]), "the webhook to be applied")
    assert (row.label, row.status, row.annotator) == ("Bag", "accepted", annotator.user_id)
    assert (row.shown_prediction_id, row.shown_model_version, row.shown_label) == (
        tasks[0]["prediction"],
        MODEL,
        "Coat",
    )
    assert row.guide_fingerprint == live.guide.fingerprint() and row.lead_time == 2.0

    annotator.client.update_annotation(made["id"], "Sandal")
    _wait(lambda: _rows(live)[made["id"]].label == "Sandal", "the edit to be applied")
    assert studio.http.delete(f"/api/annotations/{made['id']}/").status_code == 204
    _wait(lambda: _rows(live)[made["id"]].deleted, "the deletion to be applied")
    with live.sessions() as session:
        assert session.get(Image, tasks[0]["image"]).label is None


def test_reconciliation_stores_what_happened_while_no_webhook_arrived(
    live: ServiceContext, annotator: Annotator, studio: StudioClient
) -> None:
    project_id, tasks = _project_with_tasks(live, 4)
    # The watermark is when a pass starts, less the overlap: the untouched fourth task must
    # have been written before that window, or the next pass reads it again, as it should.
    time.sleep(live.settings.label_studio.reconcile_overlap_s + 1)
    assert reconcile(live).full  # the first pass reads everything and sets the watermark
    first = annotator.client.annotate(tasks[0]["task"], "Bag")
    _wait(lambda: first["id"] in _rows(live), "the webhook to be applied")

    (hook,) = [h for h in studio.http.get("/api/webhooks/").json() if h["project"] == project_id]
    studio.http.patch(f"/api/webhooks/{hook['id']}/", json={"is_active": False}).raise_for_status()
    second = annotator.client.annotate(
        tasks[1]["task"], "Coat", parent_prediction=tasks[1]["prediction"]
    )
    skipped = annotator.client.http.post(
        f"/api/tasks/{tasks[2]['task']}/annotations/", json={"result": [], "was_cancelled": True}
    ).json()
    assert studio.http.delete(f"/api/annotations/{first['id']}/").status_code == 204
    time.sleep(1.0)
    assert second["id"] not in _rows(live)  # nothing was delivered

    report = reconcile(live)
    assert not report.full and report.tasks_seen == 3  # only the changed tasks were read
    assert (report.new, report.deleted, report.cancelled) == (2, 1, 1)
    rows = _rows(live)
    assert rows[first["id"]].deleted and rows[second["id"]].shown_label == "Coat"
    assert rows[skipped["id"]].status == "cancelled"
    with live.sessions() as session:
        assert session.get(Image, tasks[1]["image"]).label == "Coat"
        watermark = session.get(ReconcileState, project_id).watermark
    hook = studio.http.get(f"/api/webhooks/{hook['id']}/").json()
    assert hook["is_active"] is True  # reconciliation registered the webhook again

    time.sleep(1.0)
    again = reconcile(live)
    assert (again.tasks_seen, again.new, again.updated) == (0, 0, 0)
    with live.sessions() as session:
        assert session.get(ReconcileState, project_id).watermark > watermark
