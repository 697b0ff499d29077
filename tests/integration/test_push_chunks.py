"""Chunked pushes into a real Label Studio that loses an answer, or is killed mid-push.

Both tests push a round of a few thousand images (rows made directly in the database: the
push is under test, not the selection) in chunks, and count tasks by content hash in Label
Studio and in the service's ledger: exactly one per distinct image content, none lost.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import insert, select

from labeling.gateway import LabelStudioGateway
from labeling.local_server import LocalLabelStudio
from labeling.tasks import CONTENT_HASH_KEY
from service.core.orm import Image, ModelVersion, Round, RoundItem, utcnow
from service.core.settings import LabelStudioSettings
from service.studio.tables import ContentTask
from tests.helpers import ImagePool, api_client, make_settings, wait_for_job
from tests.integration.conftest import StudioTemplate, start_from_template

pytestmark = pytest.mark.integration
COPIES = 10  # images whose bytes equal an earlier image's: they share its task


class ImportFaults(httpx.BaseTransport):
    """Forwards every request; on the `at`-th import call, runs `fault` (see the tests)."""

    def __init__(self, at: int, fault: str, server: LocalLabelStudio) -> None:
        self._inner = httpx.HTTPTransport()
        self.at, self.fault, self.server = at, fault, server
        self.imports = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        is_import = request.method == "POST" and request.url.path.endswith("/import")
        self.imports += is_import
        if not is_import or self.imports != self.at:
            return self._inner.handle_request(request)
        if self.fault == "lose the answer":  # Label Studio creates the tasks; we never hear
            self._inner.handle_request(request).read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        threading.Timer(0.1, self.server.kill).start()  # kill -9 while the chunk is in flight
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(scope="module")
def server(
    studio_template: StudioTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalLabelStudio]:
    """A Label Studio of this module's own: it gets killed."""
    started = start_from_template(studio_template, tmp_path_factory.mktemp("push-studio"))
    try:
        yield started
    finally:
        started.stop()


def service_for(
    tmp_path: Path, pool: ImagePool, server: LocalLabelStudio, *, max_wait_s: float
) -> Any:
    studio = LabelStudioSettings(
        url=server.url,
        api_key=SecretStr(server.api_token),
        project_title=f"push {uuid.uuid4().hex[:10]}",
        reconcile_every_s=0,
        push_chunk_size=200,
        push_max_wait_s=max_wait_s,
    )
    return api_client(make_settings(tmp_path, pool, label_studio=studio))


def make_round(client: TestClient, images: int) -> int:
    """A selected round of `images` new images (the last `COPIES` repeat earlier bytes)."""
    context = client.app.state.context  # type: ignore[attr-defined]
    tag, now = uuid.uuid4().hex, utcnow()
    hashes = [f"{tag}{i:032x}" for i in range(images - COPIES)]
    hashes += hashes[:COPIES]
    with context.sessions() as session:
        rows = [
            {"path": f"/push/{tag}/{i}.png", "sha256": digest, "width": 28, "height": 28}
            for i, digest in enumerate(hashes)
        ]
        session.execute(
            insert(Image), [{**r, "source": "folder", "registered_at": now} for r in rows]
        )
        ids = list(session.scalars(select(Image.id).where(Image.path.like(f"/push/{tag}/%"))))
        session.add(
            ModelVersion(
                id=f"push-{tag[:8]}",
                backbone_id="b",
                checkpoint_path="-",
                n_train=0,
                class_names=["Coat"],
                metrics={},
                guide_fingerprint="f",
                labels_digest="d",
            )
        )
        round_ = Round(strategy="entropy", k=images, model_version=f"push-{tag[:8]}", pool_size=0)
        session.add(round_)
        session.flush()
        session.add_all(
            RoundItem(
                round_id=round_.id,
                image_id=image_id,
                rank=rank,
                score=0.5,
                predicted_label="Coat",
                predicted_probability=0.5,
                model_version=round_.model_version,
            )
            for rank, image_id in enumerate(sorted(ids))
        )
        session.commit()
        return round_.id


def push(client: TestClient, round_id: int) -> dict[str, Any]:
    response = client.post(f"/v1/rounds/{round_id}/push")
    assert response.status_code == 202, response.text
    return wait_for_job(client, response.json(), timeout_s=120)


def studio_tasks(server: LocalLabelStudio, project_id: int) -> list[dict[str, Any]]:
    """Every task of the project, read from Label Studio's tasks API (not the gateway)."""
    headers = {"Authorization": f"Token {server.api_token}"}
    tasks: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as http:
        for page in range(1, 100):
            params = {"project": project_id, "page": page, "page_size": 1000, "fields": "task_only"}
            response = http.get("/api/tasks/", params=params)
            if response.status_code == 404:
                break
            batch = response.raise_for_status().json()["tasks"]
            tasks += batch
            if len(batch) < 1000:
                break
    return tasks


def assert_one_task_per_content(
    client: TestClient, server: LocalLabelStudio, round_id: int, images: int
) -> None:
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        round_ = session.get(Round, round_id)
        assert round_ is not None and round_.status == "pushed" and round_.project_id
        items = list(session.scalars(select(RoundItem).where(RoundItem.round_id == round_id)))
        ledger = list(session.scalars(select(ContentTask).where(ContentTask.round_id == round_id)))
        hashes = dict(session.execute(select(Image.id, Image.sha256)).all())
    tasks = studio_tasks(server, round_.project_id)
    per_hash = Counter(t["meta"][CONTENT_HASH_KEY] for t in tasks)
    assert len(tasks) == images - COPIES and set(per_hash.values()) == {1}
    assert len(ledger) == images - COPIES and all(row.task_id for row in ledger)
    task_of = {t["meta"][CONTENT_HASH_KEY]: t["id"] for t in tasks}
    assert {row.content_sha256: row.task_id for row in ledger} == task_of
    assert len(items) == images and all(item.task_id for item in items)
    assert all(item.task_id == task_of[hashes[item.image_id]] for item in items)


def pushed_entry(client: TestClient, round_id: int) -> dict:
    """The round's one `task.pushed` audit entry."""
    params = {"action": "task.pushed", "subject_type": "round", "subject_id": str(round_id)}
    (entry,) = client.get("/v1/audit", params=params).json()["items"]
    return dict(entry)


def test_a_lost_answer_is_found_in_label_studio_not_imported_again(
    tmp_path: Path, fashion_pool: ImagePool, server: LocalLabelStudio
) -> None:
    images = 600
    with service_for(tmp_path, fashion_pool, server, max_wait_s=60) as client:
        context = client.app.state.context  # type: ignore[attr-defined]
        faults = ImportFaults(2, "lose the answer", server)
        context.gateway = LabelStudioGateway(server.url, server.api_token, transport=faults)
        round_id = make_round(client, images)
        job = push(client, round_id)
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
        assert faults.imports == 3  # 590 tasks in chunks of 200; the lost one was never resent
        assert_one_task_per_content(client, server, round_id, images)
        entry = pushed_entry(client, round_id)
        assert (entry["after"]["recovered"], entry["after"]["retries"]) == (200, 1), entry
        assert entry["after"]["tasks_created"] == images - COPIES


def test_label_studio_killed_mid_push_leaves_one_task_per_image(
    tmp_path: Path, fashion_pool: ImagePool, server: LocalLabelStudio
) -> None:
    images = 2000
    with service_for(tmp_path, fashion_pool, server, max_wait_s=2) as client:
        context = client.app.state.context  # type: ignore[attr-defined]
        faults = ImportFaults(4, "kill", server)
        context.gateway = LabelStudioGateway(server.url, server.api_token, transport=faults)
        round_id = make_round(client, images)
        accepted = client.post(f"/v1/rounds/{round_id}/push").json()
        while faults.imports < 4:
            time.sleep(0.05)
        time.sleep(0.5)
        server.start(timeout_s=120)  # the same data directory and port
        job = wait_for_job(client, accepted, timeout_s=120)
        if job["status"] != "succeeded":  # its attempts were spent while Label Studio started
            assert json.dumps(job["error"]).count("label_studio_unavailable"), job
            assert push(client, round_id)["status"] == "succeeded"
        # The kill was met by a chunk's backoff (Label Studio back within it) or a new attempt.
        entry = pushed_entry(client, round_id)
        assert job["attempts"] >= 2 or entry["after"]["retries"] >= 1, (job, entry)
        assert_one_task_per_content(client, server, round_id, images)
