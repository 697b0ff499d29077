"""The guide's WIP limit caps the tasks open in a real Label Studio; answers release the rest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guides import example_guide_path
from labeling.local_server import LocalLabelStudio
from service.core.settings import LabelStudioSettings
from tests.helpers import ImagePool, api_client, make_settings, register_pool, wait_for_job
from tests.integration.flows import project_title, seed, sync
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
WIP_LIMIT = 2


@pytest.fixture
def capped(
    tmp_path: Path, fashion_pool: ImagePool, label_studio: LocalLabelStudio
) -> Iterator[TestClient]:
    """A service whose guide allows two open tasks per annotator (one annotator so far)."""
    guide = tmp_path / "guide.yaml"
    text = example_guide_path("fashion-mnist").read_text()
    guide.write_text(text + f"\nflow:\n  wip_per_annotator: {WIP_LIMIT}\n")
    studio = LabelStudioSettings(
        url=label_studio.url,
        api_key=SecretStr(label_studio.api_token),
        project_title=f"capped {uuid.uuid4().hex[:10]}",
    )
    settings = make_settings(tmp_path, fashion_pool, label_studio=studio, guide_path=guide)
    with api_client(settings) as client:
        yield client


def test_a_round_opens_only_what_the_wip_limit_allows_and_answers_release_the_rest(
    capped: TestClient, fashion_pool: ImagePool, studio: StudioClient
) -> None:
    register_pool(capped, str(fashion_pool.folder))
    seed(capped, fashion_pool, 2)
    job = wait_for_job(capped, capped.post("/v1/rounds", json={"k": 5}).json())
    assert job["status"] == "succeeded", job
    round_ = capped.get(f"/v1/rounds/{job['result']['round_id']}").json()
    assert round_["status"] == "releasing"
    ranked = sorted(round_["items"], key=lambda item: item["rank"])
    assert [item["task_id"] is not None for item in ranked] == [True] * 2 + [False] * 3
    project = studio.project_by_title(project_title(capped))
    assert len(studio.tasks(project["id"])) == WIP_LIMIT

    # One answer frees one place: the next task by rank is released, after the others.
    first = min(studio.tasks(project["id"]), key=lambda task: task["id"])
    studio.annotate(first["id"], ranked[0]["predicted_label"])
    sync(capped)  # what a webhook delivery does too: the change releases held tasks
    released = wait_for_tasks(studio, project["id"], WIP_LIMIT + 1)
    round_ = capped.get(f"/v1/rounds/{round_['id']}").json()
    ranked = sorted(round_["items"], key=lambda item: item["rank"])
    task_ids = [item["task_id"] for item in ranked]
    assert task_ids[3:] == [None, None] and round_["status"] == "releasing"
    assert task_ids[:3] == sorted(task_ids[:3]) == sorted(t["id"] for t in released)
    board = capped.get("/v1/board").json()
    assert board["wip"]["queue_limit"] == WIP_LIMIT and not board["wip"]["queue_over_limit"]


def wait_for_tasks(studio: StudioClient, project_id: int, count: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tasks = studio.tasks(project_id)
        if len(tasks) >= count:
            assert len(tasks) == count, "more tasks were released than the queue had room for"
            return tasks
        time.sleep(0.5)
    raise AssertionError(f"the project never reached {count} tasks")
