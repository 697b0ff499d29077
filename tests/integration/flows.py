"""Steps the integration tests share: a service bound to the test Label Studio, seeds, rounds."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from labeling.local_server import LocalLabelStudio
from models.datasets import FASHION_MNIST_CLASSES
from service.app import create_app
from service.settings import LabelStudioSettings
from tests.helpers import ImagePool, image_ids_by_name, make_settings, wait_for_job


def service_client(tmp_path: Path, pool: ImagePool, studio: LocalLabelStudio) -> TestClient:
    """A service (not yet started) whose project in the test Label Studio is its own."""
    settings = LabelStudioSettings(
        url=studio.url,
        api_key=SecretStr(studio.api_token),
        project_title=f"test {uuid.uuid4().hex[:10]}",
    )
    return TestClient(create_app(make_settings(tmp_path, pool, label_studio=settings)))


def seed(client: TestClient, pool: ImagePool, per_class: int) -> set[int]:
    """Import the true labels of the first `per_class` pool images of each class."""
    ids = image_ids_by_name(client)
    chosen: dict[int, str] = {}
    counts = [0] * len(FASHION_MNIST_CLASSES)
    for position, label in enumerate(pool.labels):
        if counts[label] < per_class:
            counts[label] += 1
            chosen[ids[f"{position:05d}.png"]] = FASHION_MNIST_CLASSES[label]
    response = client.post(
        "/labels",
        json={
            "labels": [{"image_id": image_id, "label": label} for image_id, label in chosen.items()]
        },
    )
    assert response.status_code == 200, response.text
    return set(chosen)


def run_round(client: TestClient, k: int) -> dict:
    job = wait_for_job(client, client.post("/rounds", json={"k": k}).json())
    assert job["status"] == "succeeded", job
    assert job["percent"] == 100
    return dict(client.get(f"/rounds/{job['result']['round_id']}").json())


def project_title(client: TestClient) -> str:
    return str(client.app.state.context.settings.label_studio.project_title)  # type: ignore[attr-defined]
