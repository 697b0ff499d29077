"""Re-pushes racing a round's push, and re-pushing an old round, in a real Label Studio."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from tests.helpers import ImagePool, all_items, register_pool, wait_for_job
from tests.integration.flows import project_title, run_round, seed
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 30


@pytest.fixture
def service(service: TestClient, fashion_pool: ImagePool) -> TestClient:
    register_pool(service, str(fashion_pool.folder))
    seed(service, fashion_pool, 2)
    return service


def hammer(client: TestClient, stop: threading.Event, jobs: list[dict]) -> None:
    """As a pipeline retrying blindly: re-push every round it sees, again and again."""
    while not stop.is_set():
        for round_ in all_items(client, "/v1/rounds"):
            response = client.post(f"/v1/rounds/{round_['id']}/push")
            assert response.status_code == 202, response.text
            jobs.append(response.json())


def test_concurrent_re_pushes_during_a_round_create_no_duplicate_task(
    service: TestClient, studio: StudioClient
) -> None:
    accepted = service.post("/v1/rounds", json={"k": K}).json()
    assert service.post("/v1/rounds", json={"k": K}).json()["job_id"] == accepted["job_id"]
    stop, jobs = threading.Event(), []
    clients = [threading.Thread(target=hammer, args=(service, stop, jobs)) for _ in range(3)]
    for thread in clients:
        thread.start()
    try:
        round_job = wait_for_job(service, accepted)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    assert round_job["status"] == "succeeded", round_job
    pushes = [wait_for_job(service, job) for job in jobs]
    assert jobs and all(job["status"] == "succeeded" for job in pushes)
    assert len({job["id"] for job in pushes}) < len(pushes)  # waiting re-pushes were shared
    tasks = studio.tasks(studio.project_by_title(project_title(service))["id"])
    per_image = Counter(task["data"]["image_id"] for task in tasks)
    assert len(per_image) == K and max(per_image.values()) == 1


def test_re_pushing_an_old_round_changes_neither_it_nor_the_model_in_force(
    service: TestClient, studio: StudioClient, fashion_pool: ImagePool
) -> None:
    first = run_round(service, 6)
    seed(service, fashion_pool, 4)  # more labels: the next round retrains
    second = run_round(service, 6)
    assert second["model_version"] != first["model_version"]
    before = service.get(f"/v1/rounds/{first['id']}").json()
    job = wait_for_job(service, service.post(f"/v1/rounds/{first['id']}/push").json())
    assert job["status"] == "succeeded" and job["result"]["status"] == "pushed"
    project = studio.project_by_title(project_title(service))
    assert project["model_version"] == second["model_version"]
    assert len(studio.tasks(project["id"])) == 12
    again = service.get(f"/v1/rounds/{first['id']}").json()
    assert again == before and again["status"] == "pushed"
    assert second["model_version"] in {item["model_version"] for item in again["items"]}
