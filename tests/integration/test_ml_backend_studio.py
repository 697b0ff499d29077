"""The service as Label Studio's ML backend, connected and driven through Label Studio's API.

An admin's project made inside Label Studio, tasks whose images the service has never seen
(on an allowed loopback host, and uploaded into Label Studio), "Retrieve predictions" in the
Data Manager and "Start training" in the model settings.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labeling.gateway import build_label_config
from labeling.local_server import LocalLabelStudio, free_loopback_port
from labeling.studio_config import project_spec
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, write_pngs
from service.api.app import create_app
from service.api.serving import served
from service.auth.keys import create_key
from service.context import ServiceContext
from service.core.settings import LabelStudioSettings, MlBackendSettings
from tests.helpers import ImagePool, make_settings
from tests.image_host import ImageHost, Route, image_host
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
NEW_IMAGES = 12  # Fashion-MNIST training images: the pool holds test images only


@dataclass
class PredictCalls:
    """Each `/predict` call the service received: how many tasks it carried."""

    sizes: list[int] = field(default_factory=list)


def counting(app: ASGIApp, calls: PredictCalls) -> ASGIApp:
    """`app`, noting the task count of every `/v1/ml-backend/predict` request it receives."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/ml-backend/predict"):
            await app(scope, receive, send)
            return
        messages: list[Message] = []
        while not messages or messages[-1].get("more_body", False):
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages)
        calls.sizes.append(len(json.loads(body).get("tasks", [])))

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)

    return wrapped


@dataclass
class Live:
    context: ServiceContext
    api: httpx.Client  # the service, with a key
    key: str
    url: str
    calls: PredictCalls
    host: ImageHost
    studio: StudioClient
    project_id: int
    new_images: Path
    new_labels: list[int]


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory,
    fashion_pool: ImagePool,
    label_studio: LocalLabelStudio,
    studio: StudioClient,
) -> Iterator[Live]:
    """The service on a loopback port with 40 seed labels, and an admin's own project."""
    tmp = tmp_path_factory.mktemp("ml-backend-studio")
    images, labels = load_fashion_mnist("train")
    write_pngs(images[:NEW_IMAGES], tmp / "new", names=[f"{i:02d}.png" for i in range(NEW_IMAGES)])
    port = free_loopback_port()
    with image_host() as host:
        studio_settings = LabelStudioSettings(
            url=label_studio.url,
            api_key=SecretStr(label_studio.api_token),
            project_title=f"ml {uuid.uuid4().hex[:10]}",
            reconcile_every_s=0,
        )
        allowed = [host.host, f"127.0.0.1:{label_studio.port}"]
        settings = make_settings(
            tmp,
            fashion_pool,
            label_studio=studio_settings,
            public_url=f"http://127.0.0.1:{port}",
            ml_backend=MlBackendSettings(allowed_hosts=allowed),
        )
        app = create_app(settings)
        calls = PredictCalls()
        with served(counting(app, calls), port):
            context: ServiceContext = app.state.context
            with context.sessions() as session:
                key = create_key(session, "label studio").token.get_secret_value()
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}
            )
            _register_and_seed(api, fashion_pool)
            config_xml = build_label_config(project_spec(context.guide, title="admin's project"))
            project = studio.http.post(
                "/api/projects", json={"title": "admin's project", "label_config": config_xml}
            ).raise_for_status()
            try:
                yield Live(
                    context,
                    api,
                    key,
                    f"http://127.0.0.1:{port}/v1/ml-backend",
                    calls,
                    host,
                    studio,
                    int(project.json()["id"]),
                    tmp / "new",
                    [int(x) for x in labels[:NEW_IMAGES]],
                )
            finally:
                api.close()


def _register_and_seed(api: httpx.Client, pool: ImagePool) -> None:
    job = api.post("/v1/images/register", json={"folder": str(pool.folder)}).json()
    assert _job(api, job["job_id"])["status"] == "succeeded"
    images = {
        i["path"].rsplit("/", 1)[-1]: i["id"]
        for i in api.get("/v1/images?limit=1000").json()["items"]
    }
    labels = [
        {"image_id": images[f"{p:05d}.png"], "label": FASHION_MNIST_CLASSES[pool.labels[p]]}
        for p in range(40)
    ]
    api.post("/v1/labels", json={"labels": labels}).raise_for_status()


def _job(api: httpx.Client, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    return _until(
        lambda: (
            (j := api.get(f"/v1/jobs/{job_id}").json())["status"] in ("succeeded", "failed") and j
        ),
        f"job {job_id}",
        timeout_s=timeout_s,
    )


def _until(check: Any, what: str, *, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _connect(live: Live, password: str) -> httpx.Response:
    """Add the service as the project's model, as the model settings page does."""
    return live.studio.http.post(
        "/api/ml",
        json={
            "project": live.project_id,
            "url": live.url,
            "title": "activelabel",
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": "labelstudio",
            "basic_auth_pass": password,
        },
    )


def test_connect_with_a_key_then_start_training_from_label_studio(live: Live) -> None:
    refused = _connect(live, "al_00000000_wrong")
    assert refused.status_code == 400, refused.text
    assert "authentication parameters were either not provided or are incorrect" in refused.text

    connected = _connect(live, live.key)
    assert connected.status_code == 201, connected.text
    backend = connected.json()
    assert backend["readable_state"] == "Connected" and backend["auth_method"] == "BASIC_AUTH"

    pressed = live.studio.http.post(f"/api/ml/{backend['id']}/train", json={})
    assert pressed.status_code == 200, pressed.text
    jobs = live.api.get("/v1/jobs", params={"kind": "train"}).json()["items"]
    assert len(jobs) == 1
    job = _job(live.api, jobs[0]["id"])
    assert job["status"] == "succeeded", job
    version = job["result"]["model_version"]
    assert live.api.get("/v1/models/active").json()["id"] == version
    state = live.studio.http.get(f"/api/ml/{backend['id']}").json()  # refreshes via /setup
    assert state["model_version"] == version and state["readable_state"] == "Connected"


def test_retrieve_predictions_for_tasks_made_inside_label_studio(live: Live) -> None:
    if not live.studio.http.get("/api/ml", params={"project": live.project_id}).json():
        assert _connect(live, live.key).status_code == 201
    trained = live.api.post("/v1/models/train").json()
    version = _job(live.api, trained["job_id"])["result"]["model_version"]
    tasks = []
    for n in range(NEW_IMAGES - 2):
        live.host.routes[f"/new/{n:02d}.png"] = Route(
            body=(live.new_images / f"{n:02d}.png").read_bytes()
        )
        tasks.append({"data": {"image": f"{live.host.url}/new/{n:02d}.png"}})
    live.host.routes["/new/corrupt.png"] = Route(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    tasks.append({"data": {"image": f"{live.host.url}/new/corrupt.png"}})
    tasks.append({"data": {"image": "http://127.0.0.1:9/elsewhere.png"}})
    imported = live.studio.http.post(f"/api/projects/{live.project_id}/import", json=tasks)
    assert imported.status_code == 201, imported.text
    upload = (live.new_images / f"{NEW_IMAGES - 1:02d}.png").read_bytes()
    uploaded = live.studio.http.post(
        f"/api/projects/{live.project_id}/import",
        files={"file": ("upload.png", upload, "image/png")},
    )
    assert uploaded.status_code == 201, uploaded.text
    total = len(tasks) + 1

    live.calls.sizes.clear()
    action = live.studio.http.post(
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": live.project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    assert action.status_code == 200, action.text
    assert live.calls.sizes == [total]  # one call for every task, never one per task

    by_task = {t["id"]: t for t in live.studio.tasks(live.project_id)}
    predicted = {i: t for i, t in by_task.items() if t["predictions"]}
    assert len(predicted) == total - 2  # all but the corrupt image and the disallowed host
    for task in predicted.values():
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == version and 0 < prediction["score"] <= 1
        assert prediction["result"][0]["value"]["choices"][0] in FASHION_MNIST_CLASSES
    uploaded_task = next(
        t for t in by_task.values() if t["data"]["image"].startswith("/data/upload/")
    )
    assert uploaded_task["predictions"], "the uploaded image is fetched from Label Studio"

    files = [
        ("files", (f"{n}.png", (live.new_images / f"{n:02d}.png").read_bytes()))
        for n in range(NEW_IMAGES - 2)
    ]
    direct = [i["label"] for i in live.api.post("/v1/predictions", files=files).json()["items"]]
    shown = [
        next(t for t in by_task.values() if t["data"]["image"].endswith(f"/new/{n:02d}.png"))
        for n in range(NEW_IMAGES - 2)
    ]
    assert [t["predictions"][0]["result"][0]["value"]["choices"][0] for t in shown] == direct

    live.calls.sizes.clear()
    again = live.studio.http.post(
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": live.project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    assert again.status_code == 200 and live.calls.sizes == [2]  # only the two without one
