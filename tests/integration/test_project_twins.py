"""A project created twice (a create retried after its answer was lost) heals itself."""

from __future__ import annotations

import uuid

import pytest

from guides import example_guide_path, load_guide
from labeling.gateway import LabelStudioGateway
from labeling.local_server import LocalLabelStudio
from labeling.studio_config import project_spec
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
GUIDE = load_guide(example_guide_path("fashion-mnist"))


def twin(studio: StudioClient, title: str) -> int:
    return int(
        studio.http.post("/api/projects", json={"title": title}).raise_for_status().json()["id"]
    )


def titled(studio: StudioClient, title: str) -> list[int]:
    projects = studio.http.get("/api/projects", params={"title": title, "page_size": 100}).json()
    return sorted(p["id"] for p in projects["results"] if p["title"] == title)


def test_the_empty_twin_goes_and_the_one_holding_tasks_stays(
    label_studio: LocalLabelStudio, studio: StudioClient
) -> None:
    gateway = LabelStudioGateway(label_studio.url, label_studio.api_token)
    spec = project_spec(GUIDE, title=f"twins {uuid.uuid4().hex[:8]}")
    first = gateway.ensure_project(spec)
    second = twin(studio, spec.title)
    assert gateway.ensure_project(spec) == first and titled(studio, spec.title) == [first]

    # The twin that got the tasks is the project in use; the empty older one goes.
    second = twin(studio, spec.title)
    task = {"data": {"image": "http://127.0.0.1:9/x.png", "image_id": 1}}
    studio.http.post(f"/api/projects/{second}/import", json=[task]).raise_for_status()
    assert gateway.ensure_project(spec) == second and titled(studio, spec.title) == [second]
    gateway.close()
