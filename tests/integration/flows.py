"""Steps the integration tests share: known labels in, a round run to its end."""

from __future__ import annotations

from fastapi.testclient import TestClient

from models.datasets import FASHION_MNIST_CLASSES
from tests.helpers import ImagePool, image_ids_by_name, wait_for_job


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
        "/v1/labels",
        json={
            "labels": [{"image_id": image_id, "label": label} for image_id, label in chosen.items()]
        },
    )
    assert response.status_code == 200, response.text
    return set(chosen)


def run_round(client: TestClient, k: int, *, strategy: str | None = None) -> dict:
    body = {"k": k} if strategy is None else {"k": k, "strategy": strategy}
    job = wait_for_job(client, client.post("/v1/rounds", json=body).json())
    assert job["status"] == "succeeded", job
    assert job["percent"] == 100
    return dict(client.get(f"/v1/rounds/{job['result']['round_id']}").json())


def project_title(client: TestClient) -> str:
    return str(client.app.state.context.settings.label_studio.project_title)  # type: ignore[attr-defined]


def sync(client: TestClient) -> dict:
    """Read every annotation of the project back (a full reconciliation job); its report."""
    job = wait_for_job(client, client.post("/v1/annotations/sync").json())
    assert job["status"] == "succeeded", job
    return dict(job["result"])
