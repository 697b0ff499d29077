"""One whole round against a real Label Studio: register, seed, select, push, annotate, sync."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models import BackboneSpec, embed_images, entropy, load_backbone, load_checkpoint
from models.datasets import FASHION_MNIST_CLASSES
from tests.helpers import (
    TEST_IMAGE_SIZE,
    ImagePool,
    all_items,
    image_ids_by_name,
    register_pool,
)
from tests.integration.flows import project_title, run_round, seed, sync
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 20
SEED_PER_CLASS = 3


def test_round_pushes_the_most_uncertain_images_and_labels_come_back(
    service: TestClient, fashion_pool: ImagePool, studio: StudioClient, tmp_path: Path
) -> None:
    registered = register_pool(service, str(fashion_pool.folder))
    assert registered["registered"] == len(fashion_pool.labels) >= 200
    assert {s["code"] for s in registered["skipped"]} == {"image_corrupt", "not_an_image"}
    seeds = seed(service, fashion_pool, SEED_PER_CLASS)

    round_ = run_round(service, K, strategy="entropy")
    items = round_["items"]
    assert [item["rank"] for item in items] == list(range(1, K + 1))
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert not seeds & {item["image_id"] for item in items}

    # Label Studio holds exactly these tasks, in rank order, with the round's model version.
    project = studio.project_by_title(project_title(service))
    tasks = sorted(studio.tasks(project["id"]), key=lambda t: t["id"])
    assert [t["data"]["image_id"] for t in tasks] == [item["image_id"] for item in items]
    for task, item in zip(tasks, items, strict=True):
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == round_["model_version"]
        assert prediction["result"][0]["value"]["choices"] == [item["predicted_label"]]
        assert prediction["score"] == pytest.approx(item["predicted_probability"], abs=1e-6)
        image_url = urlsplit(task["data"]["image"])
        assert image_url.path.endswith(f"/v1/media/{item['image_id']}")
        assert {"exp", "sig"} <= set(parse_qs(image_url.query))

    # The suggestions come from the guide's default head, which learned from the pool too.
    first_model = service.get(f"/v1/models/{round_['model_version']}").json()
    assert first_model["head"] == "semi_supervised" and first_model["metrics"]["pseudo_labels"]

    # The ranking is the entropy ranking, recomputed here from the model files alone.
    check_ranking_independently(service, round_, seeds, tmp_path)

    # Annotators confirm half of the suggestions and correct the other half.
    expected = annotate(studio, tasks, items, fashion_pool, image_ids_by_name(service))
    report = sync(service)
    assert (report["new"], report["problems"], report["labeled_images"]) == (K, [], K)
    exported = {row["image_id"]: row for row in all_items(service, "/v1/labels")}
    for image_id, label in expected.items():
        assert exported[image_id]["label"] == label
        assert exported[image_id]["source"] == "annotation"
    again = sync(service)
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 0, K)

    # The next round retrains and never re-selects a labeled or already-sent image.
    second = run_round(service, K, strategy="entropy")
    assert second["model_version"] != round_["model_version"]
    second_ids = {item["image_id"] for item in second["items"]}
    assert len(second_ids) == K
    assert not second_ids & (set(expected) | seeds)
    assert service.get(f"/v1/models/{second['model_version']}").json()["head"] == "semi_supervised"
    all_tasks = studio.tasks(project["id"])
    assert len(all_tasks) == 2 * K
    for task in all_tasks:
        if task["data"]["image_id"] in second_ids:
            (prediction,) = task["predictions"]
            assert prediction["model_version"] == second["model_version"]
    assert len({t["data"]["image_id"] for t in all_tasks}) == 2 * K


def annotate(
    studio: StudioClient, tasks: list[dict], items: list[dict], pool: ImagePool, ids: dict[str, int]
) -> dict[int, str]:
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


def check_ranking_independently(
    client: TestClient, round_: dict, seeds: set[int], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "service" / "checkpoints" / f"{round_['model_version']}.pt"
    head = load_checkpoint(checkpoint)
    listing = all_items(client, "/v1/images", limit=1000)
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
