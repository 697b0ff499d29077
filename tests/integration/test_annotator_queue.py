"""The annotator's queue in a real Label Studio: rank order, and withdrawn tasks never served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labeling.accounts import login_token
from labeling.local_server import LocalLabelStudio
from service.studio.webhooks import SECRET_HEADER, webhook_secret
from tests.helpers import ImagePool, all_items, register_pool, wait_for_job
from tests.integration.flows import project_title, run_round, seed, sync
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
EMAIL, PASSWORD = "queue-annotator@example.com", "queue-annotator-pw-1"


@pytest.fixture
def annotator(service: TestClient, label_studio: LocalLabelStudio) -> Iterator[StudioClient]:
    """A plain annotator account (not the admin whose token the service uses)."""
    service.app.state.context.gateway.ensure_user(EMAIL)  # type: ignore[attr-defined]
    label_studio.set_password(EMAIL, PASSWORD)
    client = StudioClient(label_studio.url, login_token(label_studio.url, EMAIL, PASSWORD))
    try:
        yield client
    finally:
        client.close()


def next_task(annotator: StudioClient, project_id: int) -> dict[str, Any] | None:
    """What Label Studio serves this annotator next (None: nothing left)."""
    response = annotator.http.get(f"/api/projects/{project_id}/next")
    if response.status_code == 404:
        return None
    return dict(response.raise_for_status().json())


def label_of(task: dict[str, Any]) -> str:
    return str(task["predictions"][0]["result"][0]["value"]["choices"][0])


def test_tasks_are_served_in_rank_order_and_withdrawn_ones_never_again(
    service: TestClient, fashion_pool: ImagePool, studio: StudioClient, annotator: StudioClient
) -> None:
    register_pool(service, str(fashion_pool.folder))
    seed(service, fashion_pool, 2)
    first = run_round(service, 6)
    project = studio.project_by_title(project_title(service))
    assert project["sampling"] == "Sequential sampling" and project["show_instruction"]
    ranked = [item["task_id"] for item in first["items"]]

    # The annotator is served the round's tasks by rank: confirms two, starts a third.
    for expected in ranked[:2]:
        task = next_task(annotator, project["id"])
        assert task is not None and task["id"] == expected
        annotator.annotate(task["id"], label_of(task))
    started = next_task(annotator, project["id"])
    assert started is not None and started["id"] == ranked[2]
    draft = {"result": [], "lead_time": 1.0}
    annotator.http.post(f"/api/tasks/{started['id']}/drafts", json=draft).raise_for_status()

    # A retrained round that replaces the waiting tasks withdraws only the untouched ones.
    job = service.post("/v1/rounds", json={"k": 4, "replace_waiting": True}).json()
    done = wait_for_job(service, job)
    assert done["status"] == "succeeded", done
    assert done["result"]["withdrawn"] == {"withdrawn": 3, "kept": 3, "already_gone": 0}
    after = service.get(f"/v1/rounds/{first['id']}").json()["items"]
    assert [i["withdrawn"] for i in after] == [False] * 3 + [True] * 3
    assert [i["task_id"] for i in after] == ranked[:3] + [None] * 3  # the tasks are gone
    second = service.get(f"/v1/rounds/{done['result']['round_id']}").json()
    tasks = studio.tasks(project["id"])
    live = {t["id"] for t in tasks}
    assert live == set(ranked[:3]) | {item["task_id"] for item in second["items"]}
    images = [t["data"]["image_id"] for t in tasks]
    assert len(images) == len(set(images))  # a withdrawn image comes back at most once

    # The started task stays with its annotator; then the new round, by its own rank.
    task = next_task(annotator, project["id"])
    assert task is not None and task["id"] == ranked[2]
    annotator.annotate(task["id"], label_of(task))
    order = [item["task_id"] for item in second["items"]]
    task = next_task(annotator, project["id"])
    assert task is not None and task["id"] == order[0]
    annotator.annotate(task["id"], label_of(task))

    # Withdrawing the new round leaves nothing to serve; every annotation is kept.
    job = wait_for_job(service, service.post(f"/v1/rounds/{second['id']}/withdraw").json())
    assert job["result"]["withdrawn"] == 3 and job["result"]["kept"] == 1, job
    assert next_task(annotator, project["id"]) is None
    report = sync(service)
    assert report["new"] == 4 and report["deleted"] == 0, report


def test_an_annotation_racing_the_withdrawal_is_kept(
    service: TestClient, fashion_pool: ImagePool, studio: StudioClient, annotator: StudioClient
) -> None:
    """Submitted between the check and the deletion: its webhook arrives, then TASKS_DELETED."""
    register_pool(service, str(fashion_pool.folder))
    seed(service, fashion_pool, 2)
    round_ = run_round(service, 3)
    job = wait_for_job(service, service.post(f"/v1/rounds/{round_['id']}/withdraw").json())
    assert job["result"]["withdrawn"] == 3, job
    item = round_["items"][0]
    secret = webhook_secret(service.app.state.context.settings)  # type: ignore[attr-defined]
    headers = {SECRET_HEADER: secret}
    project = {"id": round_["project_id"]}
    created = annotation_created(item, project, label=item["predicted_label"])
    assert service.post("/v1/webhooks/label-studio", json=created, headers=headers).is_success
    deleted = {"action": "TASKS_DELETED", "tasks": [{"id": item["task_id"]}], "project": project}
    assert service.post("/v1/webhooks/label-studio", json=deleted, headers=headers).is_success
    (stored,) = all_items(service, "/v1/annotations", image_id=item["image_id"])
    assert (stored["deleted"], stored["label"]) == (False, item["predicted_label"])
    labels = {row["image_id"]: row["label"] for row in all_items(service, "/v1/labels")}
    assert labels[item["image_id"]] == item["predicted_label"]


def annotation_created(
    item: dict[str, Any], project: dict[str, Any], *, label: str
) -> dict[str, Any]:
    result = [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}
    ]
    task = {"id": item["task_id"], "data": {"image_id": item["image_id"]}}
    annotation = {
        "id": 10_000 + item["task_id"],
        "result": result,
        "was_cancelled": False,
        "created_at": "2026-11-28T01:27:02Z",
        "updated_at": "2026-11-28T01:27:02Z",
        "task": item["task_id"],
        "completed_by": 1,
    }
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": annotation,
        "task": task,
        "project": project,
    }
