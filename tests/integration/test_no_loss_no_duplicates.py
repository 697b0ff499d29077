"""Label Studio down, a push cut off half-way, odd annotations: nothing lost, nothing doubled."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from labeling.gateway import LabelStudioGateway
from labeling.local_server import LocalLabelStudio
from service.auth.signing import DAY_S, MediaSigner
from service.core.orm import Round, RoundItem
from service.core.settings import AuthSettings, LabelStudioSettings
from tests.helpers import (
    ImagePool,
    all_items,
    api_client,
    make_settings,
    register_pool,
    wait_for_job,
)
from tests.integration.flows import project_title, run_round, seed, sync
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 6


@pytest.fixture
def service(service: TestClient, fashion_pool: ImagePool) -> TestClient:
    """The integration service with the pool registered and two known labels per class."""
    register_pool(service, str(fashion_pool.folder))
    seed(service, fashion_pool, 2)
    return service


def test_a_round_selected_while_studio_is_down_is_pushed_once_it_is_back(
    service: TestClient, label_studio: LocalLabelStudio, studio: StudioClient
) -> None:
    context = service.app.state.context  # type: ignore[attr-defined]
    real_gateway = context.gateway
    context.gateway = LabelStudioGateway("http://127.0.0.1:9", label_studio.api_token, timeout_s=2)
    job = wait_for_job(service, service.post("/v1/rounds", json={"k": K}).json())
    assert job["error"]["code"] == "label_studio_unavailable"
    (round_,) = service.get("/v1/rounds").json()["items"]
    context.gateway.close()
    context.gateway = real_gateway

    pushed = repush(service, round_["id"])
    assert pushed["status"] == "pushed" and all(i["task_id"] for i in pushed["items"])
    # The state a push leaves when cut off after the import, before the task ids were stored.
    with context.sessions() as session:
        session.execute(
            update(RoundItem).where(RoundItem.round_id == round_["id"]).values(task_id=None)
        )
        session.execute(update(Round).where(Round.id == round_["id"]).values(status="pushing"))
        session.commit()
    replayed = repush(service, round_["id"])
    assert [i["task_id"] for i in replayed["items"]] == [i["task_id"] for i in pushed["items"]]
    tasks = studio.tasks(studio.project_by_title(project_title(service))["id"])
    assert len(tasks) == K


def repush(service: TestClient, round_id: int) -> dict:
    """Push a round again (a job) and read it back."""
    job = wait_for_job(service, service.post(f"/v1/rounds/{round_id}/push").json())
    assert job["status"] == "succeeded", job
    return dict(service.get(f"/v1/rounds/{round_id}").json())


def test_every_annotation_is_kept_and_bad_ones_are_reported(
    service: TestClient, studio: StudioClient
) -> None:
    round_ = run_round(service, K)
    project_id = studio.project_by_title(project_title(service))["id"]
    by_image = {t["data"]["image_id"]: t for t in studio.tasks(project_id)}
    items = round_["items"]
    tasks = [by_image[item["image_id"]] for item in items]

    first = studio.annotate(tasks[0]["id"], "Bag")
    studio.annotate(tasks[1]["id"], "Sneaker")
    studio.annotate(tasks[1]["id"], "Sneaker")  # a second annotator agrees
    studio.annotate(tasks[2]["id"], "Hat")  # not a label of the guide
    skipped = studio.http.post(
        f"/api/tasks/{tasks[3]['id']}/annotations/", json={"result": [], "was_cancelled": True}
    )
    assert skipped.status_code == 201, skipped.text

    report = sync(service)
    assert (report["new"], report["cancelled"], report["labeled_images"]) == (5, 1, 2)
    assert [(p["task_id"], p["code"]) for p in report["problems"]] == [
        (tasks[2]["id"], "unknown_label")
    ]

    studio.update_annotation(first["id"], "Coat")  # the annotator corrects themself
    again = sync(service)
    assert (again["new"], again["updated"], again["unchanged"]) == (0, 1, 4)
    labels = {
        row["image_id"]: row["label"]
        for row in all_items(service, "/v1/labels")
        if row["source"] == "annotation"
    }
    assert labels == {items[0]["image_id"]: "Coat", items[1]["image_id"]: "Sneaker"}

    deleted = studio.http.delete(f"/api/annotations/{first['id']}/")
    assert deleted.status_code == 204
    assert sync(service)["deleted"] == 1
    kept = {row["image_id"]: row["label"] for row in all_items(service, "/v1/labels")}
    assert items[0]["image_id"] not in kept, "a label is re-resolved when its annotation goes"
    assert kept[items[1]["image_id"]] == "Sneaker"


def test_waiting_tasks_get_the_new_models_suggestion_after_a_retrain(
    service: TestClient, studio: StudioClient, fashion_pool: ImagePool
) -> None:
    first = run_round(service, K)
    project_id = studio.project_by_title(project_title(service))["id"]
    urls = {t["id"]: t["data"]["image"] for t in studio.tasks(project_id)}
    seeded = seed(service, fashion_pool, 4)  # more known labels: the next round retrains
    second = run_round(service, K)
    assert second["model_version"] != first["model_version"]
    project = studio.project_by_title(project_title(service))
    assert project["model_version"] == second["model_version"]
    tasks = {t["id"]: t for t in studio.tasks(project["id"])}
    assert len(tasks) == 2 * K
    refreshed = service.get(f"/v1/rounds/{first['id']}").json()["items"]
    waiting = [item for item in refreshed if item["image_id"] not in seeded]
    assert waiting, "the seed labelled every image of the first round"
    assert_suggested(tasks, waiting, [first["model_version"], second["model_version"]])
    labelled = [item for item in refreshed if item["image_id"] in seeded]
    assert_suggested(tasks, labelled, [first["model_version"]])  # no longer waiting: untouched
    # The URLs signed at the push are far from expiry: nothing was re-signed.
    assert {i["task_id"]: tasks[i["task_id"]]["data"]["image"] for i in refreshed} == {
        i["task_id"]: urls[i["task_id"]] for i in refreshed
    }


def test_a_version_no_task_shows_leaves_the_projects_version_in_force(
    service: TestClient, studio: StudioClient
) -> None:
    """Label Studio refuses a model version no task has predictions of: after a retrain
    with nothing left waiting, refreshing the suggestions succeeds and keeps the old one."""
    first = run_round(service, K)
    labels = [{"image_id": i["image_id"], "label": i["predicted_label"]} for i in first["items"]]
    assert service.post("/v1/labels", json={"labels": labels}).status_code == 200
    trained = wait_for_job(service, service.post("/v1/models/train").json())
    assert trained["status"] == "succeeded", trained
    second = service.get("/v1/models/active").json()["id"]
    assert second != first["model_version"]
    for version in (first["model_version"], second):
        activation = service.post(f"/v1/models/{version}/activate").json()
        assert activation["refresh_job"] is not None, activation
        refresh = wait_for_job(service, activation["refresh_job"])
        assert refresh["status"] == "succeeded", refresh
        assert refresh["result"]["refreshed"] == 0
    assert refresh["result"]["project_version_set"] is False
    project = studio.project_by_title(project_title(service))
    assert project["model_version"] == first["model_version"]


def assert_suggested(tasks: dict[int, dict], items: list[dict], versions: list[str]) -> None:
    """Each item's task holds predictions of `versions`, in order, the last its suggestion."""
    for item in items:
        predictions = tasks[item["task_id"]]["predictions"]
        assert [p["model_version"] for p in predictions] == versions
        assert predictions[-1]["result"][0]["value"]["choices"] == [item["predicted_label"]]


def test_training_refreshes_waiting_tasks_and_resigns_urls_close_to_expiry(
    tmp_path: Path,
    fashion_pool: ImagePool,
    label_studio: LocalLabelStudio,
    studio: StudioClient,
) -> None:
    studio_settings = LabelStudioSettings(
        url=label_studio.url,
        api_key=SecretStr(label_studio.api_token),
        project_title=f"test {uuid.uuid4().hex[:10]}",
    )
    # URLs live a day: within the re-signing margin from the start.
    auth = AuthSettings(media_signing_secret=SecretStr("s" * 32), media_url_lifetime_s=DAY_S)
    settings = make_settings(tmp_path, fashion_pool, label_studio=studio_settings, auth=auth)
    with api_client(settings) as service:
        register_pool(service, str(fashion_pool.folder))
        seed(service, fashion_pool, 2)
        first = run_round(service, K)
        project_id = studio.project_by_title(studio_settings.project_title)["id"]
        urls = {t["id"]: t["data"]["image"] for t in studio.tasks(project_id)}
        seeded = seed(service, fashion_pool, 4)
        # Signed on the same day, a re-signed URL would read the same: sign for two days now.
        context = service.app.state.context  # type: ignore[attr-defined]
        context.media = MediaSigner(
            auth.media_signing_secret, public_url=settings.public_url, lifetime_s=2 * DAY_S
        )

        trained = wait_for_job(service, service.post("/v1/models/train").json())
        assert trained["status"] == "succeeded", trained
        version = trained["result"]["model_version"]
        refresh_id = trained["result"]["refresh_job_id"]
        refresh = wait_for_job(
            service, {"job_id": refresh_id, "status_url": f"/v1/jobs/{refresh_id}"}
        )
        assert refresh["status"] == "succeeded", refresh

        assert studio.project_by_title(studio_settings.project_title)["model_version"] == version
        tasks = {t["id"]: t for t in studio.tasks(project_id)}
        items = service.get(f"/v1/rounds/{first['id']}").json()["items"]
        waiting = [item for item in items if item["image_id"] not in seeded]
        assert waiting and refresh["result"]["resigned"] == len(waiting)
        assert_suggested(tasks, waiting, [first["model_version"], version])
        for item in waiting:
            url = tasks[item["task_id"]]["data"]["image"]
            assert expiry(url) > expiry(urls[item["task_id"]])  # a later expiry
            assert tasks[item["task_id"]]["data"]["image_id"] == item["image_id"]
            parts = urlsplit(url)
            fetched = service.get(f"{parts.path}?{parts.query}", headers={"Authorization": ""})
            assert fetched.status_code == 200 and fetched.content[:4] == b"\x89PNG"


def expiry(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["exp"][0])
