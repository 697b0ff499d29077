"""Seed labels, training and rounds when Label Studio is down (no server needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from models.datasets import FASHION_MNIST_CLASSES
from service.core.orm import Image
from tests.helpers import (
    ImagePool,
    all_items,
    api_client,
    image_ids_by_name,
    make_settings,
    register_pool,
    wait_for_job,
)


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool, database_url: str) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, fashion_pool, database_url=database_url)
    with api_client(settings) as test_client:
        register_pool(test_client, str(fashion_pool.folder))
        yield test_client


def seed_body(client: TestClient, pool: ImagePool, count: int) -> list[dict[str, object]]:
    ids = image_ids_by_name(client)
    return [
        {"image_id": ids[f"{p:05d}.png"], "label": FASHION_MNIST_CLASSES[pool.labels[p]]}
        for p in range(count)
    ]


def test_unknown_labels_are_refused_and_nothing_is_stored(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    body = seed_body(client, fashion_pool, 5)
    body.append({"image_id": body[0]["image_id"], "label": "Hat"})
    response = client.post("/v1/labels", json={"labels": body})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_label" and error["details"]["unknown"] == ["Hat"]
    assert client.get("/v1/labels").json() == {"items": [], "next_cursor": None}


def test_labels_for_unregistered_images_are_refused(client: TestClient) -> None:
    response = client.post("/v1/labels", json={"labels": [{"image_id": 10**6, "label": "Bag"}]})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_a_round_without_labels_fails_with_a_clear_code(client: TestClient) -> None:
    job = wait_for_job(client, client.post("/v1/rounds", json={"k": 5}).json())
    assert job["status"] == "failed"
    assert job["error"]["code"] == "not_enough_labels"


def test_unknown_strategy_is_refused_before_any_work(client: TestClient) -> None:
    response = client.post("/v1/rounds", json={"k": 5, "strategy": "clairvoyance"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_strategy" and "entropy" in error["details"]["available"]


def test_training_records_a_version_and_export_lists_seed_labels(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    body = seed_body(client, fashion_pool, 40)
    assert client.post("/v1/labels", json={"labels": body}).json() == {
        "imported": 40,
        "kept_annotated": [],
    }
    job = wait_for_job(client, client.post("/v1/models/train").json())
    assert job["status"] == "succeeded", job
    model = client.get("/v1/models/active").json()
    assert model["id"] == job["result"]["model_version"] and model["n_train"] == 40
    assert model["class_names"] == list(FASHION_MNIST_CLASSES)
    exported = all_items(client, "/v1/labels", limit=15)
    assert len(exported) == 40 and {row["source"] for row in exported} == {"seed"}
    csv_text = client.get("/v1/labels/export").text
    assert csv_text.splitlines()[0] == "image_id,path,label,source,labeled_at"
    assert len(csv_text.splitlines()) == 41
    as_lines = client.get("/v1/labels/export", params={"format": "jsonl"})
    assert as_lines.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in as_lines.text.splitlines()]
    assert [list(row.values()) for row in rows] == [
        [int(line.split(",")[0]), *line.split(",")[1:]] for line in csv_text.splitlines()[1:]
    ]


def test_label_studio_down_fails_the_push_but_keeps_the_selection(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    client.post("/v1/labels", json={"labels": seed_body(client, fashion_pool, 30)})
    job = wait_for_job(client, client.post("/v1/rounds", json={"k": 8}).json())
    assert job["status"] == "failed"
    assert job["error"]["code"] == "label_studio_unavailable"
    (round_,) = client.get("/v1/rounds").json()["items"]
    assert round_["status"] == "selected" and len(round_["items"]) == 8
    assert all(item["task_id"] is None for item in round_["items"])
    health = client.get("/v1/health").json()
    assert health["status"] == "degraded" and health["label_studio"] is False
    retry = wait_for_job(client, client.post(f"/v1/rounds/{round_['id']}/push").json())
    assert (retry["status"], retry["error"]["code"]) == ("failed", "label_studio_unavailable")
    assert retry["attempts"] == job["attempts"] == 3  # retried while Label Studio is down


def test_a_second_seed_import_never_overwrites_annotators_labels(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    body = seed_body(client, fashion_pool, 3)
    client.post("/v1/labels", json={"labels": body})
    annotated = body[0]["image_id"]
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:  # as a sync would record an annotator's label
        session.execute(
            update(Image)
            .where(Image.id == annotated)
            .values(label="Bag", label_source="annotation")
        )
        session.commit()
    again = client.post("/v1/labels", json={"labels": body}).json()
    assert again == {"imported": 2, "kept_annotated": [annotated]}
    labels = {row["image_id"]: row["label"] for row in all_items(client, "/v1/labels")}
    assert labels[annotated] == "Bag"


def test_sync_with_label_studio_down_fails_its_job_with_a_clear_code(client: TestClient) -> None:
    response = client.post("/v1/annotations/sync")
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json())
    assert job["status"] == "failed" and job["error"]["code"] == "label_studio_unavailable"
    assert "Traceback" not in job["error"]["message"]
