"""`POST /v1/drift/check`: a pipeline's batch judged before it joins the pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import ImagePool, api_client, image_ids_by_name, register_pool, wait_for_job
from tests.quality_service.drift_sets import DriftSets, drift_sets, drift_settings

__all__ = ["drift_sets"]


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool, drift_sets: DriftSets) -> Iterator[TestClient]:
    settings = drift_settings(tmp_path, fashion_pool, drift_sets, None, drift_after_ingestion=False)
    with api_client(settings) as test_client:
        register_pool(test_client, str(fashion_pool.folder))
        yield test_client


def files_of(folder: Path, count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    paths = sorted(folder.glob("*.png"))[:count]
    return [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]


def test_a_small_batch_like_the_pool_passes_at_once(
    client: TestClient, drift_sets: DriftSets
) -> None:
    uploaded = client.post("/v1/drift/check", files=files_of(drift_sets.same, 25))
    assert uploaded.status_code == 200, uploaded.text
    verdict = uploaded.json()
    assert verdict["passed"] and verdict["schema_version"] == "1.1"
    assert verdict["sample_sizes"]["new_images"] == 25
    assert verdict["sample_sizes"]["reference_images"] == 240  # the pool; broken files left out
    images = next(c for c in verdict["checks"] if c["check"] == "images")
    assert images["status"] == "ran" and not images["drifted"] and images["level"] == 0.05
    assert set(images["components"]) >= {"mmd", "ks_screen", "novelty"}
    # Registered ids: the batch's own images leave the reference.
    ids = list(image_ids_by_name(client).values())[:20]
    by_id = client.post("/v1/drift/check", json={"image_ids": ids})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["passed"]
    assert by_id.json()["sample_sizes"]["reference_images"] == 240 - 20


def test_novelty_lists_the_planted_images(client: TestClient, drift_sets: DriftSets) -> None:
    response = client.post("/v1/drift/check", json={"folder": str(drift_sets.planted)})
    assert response.status_code == 200, response.text
    listed = [n["name"] for n in response.json()["novel_images"]]
    assert set(listed) == set(drift_sets.planted_names), listed


def test_large_batches_run_as_jobs(client: TestClient, drift_sets: DriftSets) -> None:
    response = client.post("/v1/drift/check", json={"folder": str(drift_sets.unseen)})
    assert response.status_code == 202, response.text  # 40 images > drift_sync_max_images
    job = wait_for_job(client, response.json())
    assert job["status"] == "succeeded", job
    verdict = job["result"]
    assert not verdict["passed"] and verdict["sample_sizes"]["new_images"] == 40
    images = next(c for c in verdict["checks"] if c["check"] == "images")
    assert images["drifted"] and images["p_value"] <= 0.05
    assert len(verdict["novel_images"]) >= 20
    response = client.post("/v1/drift/check", files=files_of(drift_sets.same, 40))
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json())
    assert job["status"] == "succeeded" and job["result"]["passed"], job
    assert job["result"]["sample_sizes"]["new_images"] == 40
    batches = client.app.state.context.settings.data_dir / "drift-batches"  # type: ignore[attr-defined]
    assert not list(batches.iterdir())  # the uploads are removed once checked


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {}}, 422, "invalid_request"),
        ({"json": {"image_ids": [1], "folder": "/x"}}, 422, "invalid_request"),
        ({"json": {"image_ids": []}}, 422, "empty_batch"),
        ({"json": {"image_ids": [10**9]}}, 404, "not_found"),
        ({"json": {"folder": "/etc"}}, 403, "path_not_allowed"),
        ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415, None),
        ({"files": [("files", ("a.png", b"not an image", "image/png"))] * 6}, 422, None),
    ],
)
def test_bad_batches_answer_stable_codes(
    client: TestClient, kwargs: dict, status: int, code: str | None
) -> None:
    response = client.post("/v1/drift/check", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == (code or error["code"])
    if "files" in kwargs:
        assert error["code"] == "batch_too_small" and len(error["details"]["skipped"]) == 6
