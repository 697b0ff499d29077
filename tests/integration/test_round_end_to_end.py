"""One whole round against a real Label Studio: register, seed, select, push, annotate, sync."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from labeling.local_server import LocalLabelStudio
from models import BackboneSpec, embed_images, entropy, load_backbone, load_checkpoint
from models.datasets import FASHION_MNIST_CLASSES
from service.app import create_app
from service.settings import LabelStudioSettings
from tests.helpers import (TEST_IMAGE_SIZE, ImagePool, image_ids_by_name, make_settings,
                           register_pool, wait_for_job)
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 20
SEED_PER_CLASS = 3


@pytest.fixture
def service(tmp_path: Path, fashion_pool: ImagePool,
            label_studio: LocalLabelStudio) -> Iterator[TestClient]:
    studio = LabelStudioSettings(url=label_studio.url, api_key=SecretStr(label_studio.api_token),
                                 project_title=f"round test {uuid.uuid4().hex[:8]}")
    with TestClient(create_app(make_settings(tmp_path, fashion_pool, label_studio=studio))) as client:
        yield client


def seed(client: TestClient, pool: ImagePool) -> set[int]:
    ids = image_ids_by_name(client)
    chosen: dict[int, str] = {}
    for position, label in enumerate(pool.labels):
        if sum(1 for name in chosen.values() if name == FASHION_MNIST_CLASSES[label]) < SEED_PER_CLASS:
            chosen[ids[f"{position:05d}.png"]] = FASHION_MNIST_CLASSES[label]
    response = client.post("/labels", json={"labels": [
        {"image_id": image_id, "label": label} for image_id, label in chosen.items()]})
    assert response.status_code == 200, response.text
    return set(chosen)


def run_round(client: TestClient, k: int = K) -> dict:
    job = wait_for_job(client, client.post("/rounds", json={"k": k}).json())
    assert job["status"] == "succeeded", job
    assert job["percent"] == 100
    return dict(client.get(f"/rounds/{job['result']['round_id']}").json())


def test_round_pushes_the_most_uncertain_images_and_labels_come_back(
    service: TestClient, fashion_pool: ImagePool, label_studio: LocalLabelStudio, tmp_path: Path
) -> None:
    registered = register_pool(service, str(fashion_pool.folder))
    assert registered["registered"] == len(fashion_pool.labels) >= 200
    assert {s["code"] for s in registered["skipped"]} == {"image_corrupt", "not_an_image"}
    seeds = seed(service, fashion_pool)

    round_ = run_round(service)
    items = round_["items"]
    assert [item["rank"] for item in items] == list(range(1, K + 1))
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert not seeds & {item["image_id"] for item in items}

    # Label Studio holds exactly these tasks, in rank order, with the round's model version.
    studio = StudioClient(label_studio.url, label_studio.api_token)
    project = studio.project_by_title(service.app.state.context.settings.label_studio.project_title)
    tasks = sorted(studio.tasks(project["id"]), key=lambda t: t["id"])
    assert [t["data"]["image_id"] for t in tasks] == [item["image_id"] for item in items]
    for task, item in zip(tasks, items, strict=True):
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == round_["model_version"]
        assert prediction["result"][0]["value"]["choices"] == [item["predicted_label"]]
        assert prediction["score"] == pytest.approx(item["predicted_probability"], abs=1e-6)
        assert task["data"]["image"].endswith(f"/media/{item['image_id']}")

    # The ranking is the entropy ranking, recomputed here from the model files alone.
    check_ranking_independently(service, round_, seeds, tmp_path)

    # Annotators confirm half of the suggestions and correct the other half.
    expected = annotate(studio, tasks, items, fashion_pool, image_ids_by_name(service))
    sync = service.post("/annotations/sync").json()
    assert (sync["new"], sync["problems"], sync["labeled_images"]) == (K, [], K)
    exported = {row["image_id"]: row for row in service.get("/labels/export").json()}
    for image_id, label in expected.items():
        assert exported[image_id]["label"] == label
        assert exported[image_id]["source"] == "annotation"
    again = service.post("/annotations/sync").json()
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, K)

    # The next round retrains and never re-selects a labeled or already-sent image.
    second = run_round(service)
    assert second["model_version"] != round_["model_version"]
    second_ids = {item["image_id"] for item in second["items"]}
    assert len(second_ids) == K
    assert not second_ids & (set(expected) | seeds)
    all_tasks = studio.tasks(project["id"])
    assert len(all_tasks) == 2 * K
    assert len({t["data"]["image_id"] for t in all_tasks}) == 2 * K


def annotate(studio: StudioClient, tasks: list[dict], items: list[dict], pool: ImagePool,
             ids: dict[str, int]) -> dict[int, str]:
    """Confirm the suggestion on even ranks; on odd ranks give the true label, or another one."""
    truth = {ids[f"{p:05d}.png"]: FASHION_MNIST_CLASSES[c] for p, c in enumerate(pool.labels)}
    expected: dict[int, str] = {}
    for index, (task, item) in enumerate(zip(tasks, items, strict=True)):
        suggested = item["predicted_label"]
        if index % 2 == 0:
            label = suggested
            studio.annotate(task["id"], label, parent_prediction=task["predictions"][0]["id"])
        else:
            label = truth[item["image_id"]]
            if label == suggested:
                label = next(c for c in FASHION_MNIST_CLASSES if c != suggested)
            studio.annotate(task["id"], label)
        expected[item["image_id"]] = label
    return expected


def check_ranking_independently(client: TestClient, round_: dict, seeds: set[int],
                                tmp_path: Path) -> None:
    checkpoint = tmp_path / "service" / "checkpoints" / f"{round_['model_version']}.pt"
    head = load_checkpoint(checkpoint)
    listing = client.get("/images", params={"limit": 1000}).json()["items"]
    pool = [item for item in listing if item["id"] not in seeds]
    backbone = load_backbone(BackboneSpec(image_size=TEST_IMAGE_SIZE))
    result = embed_images([item["path"] for item in pool], backbone, batch_size=64)
    assert not result.failures
    scores = entropy(head.predict_proba(result.embeddings))
    recomputed = {pool[i]["id"]: float(s) for i, s in enumerate(scores)}
    chosen = {item["image_id"]: item["score"] for item in round_["items"]}
    for image_id, score in chosen.items():
        assert recomputed[image_id] == pytest.approx(score, abs=1e-3)
    cutoff = min(chosen.values())
    left_out = np.array([s for i, s in recomputed.items() if i not in chosen])
    assert (left_out <= cutoff + 1e-3).all()
