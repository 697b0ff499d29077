"""Label Studio's "Retrieve predictions" over 2,000 tasks, with the service as its ML backend.

A real Label Studio, with its default 100 s predict timeout, holds 2,000 tasks made inside it
whose Fashion-MNIST images (training split) the service has never seen: a loopback server on
an allowed host serves them. The service (trained on 200 labeled test images, its default
60 s budget per `/predict` call) is connected through Label Studio's API with Basic
Authentication; the Data Manager action `retrieve_tasks_predictions` then runs over every
task, again and again as an admin would, until every task holds a prediction. Counted per
action: the `/predict` calls the service received, their tasks, the predictions stored;
timed: each action. Baseline in the same run: `/predict` with one task per call (what Label
Studio falls back to when a backend answers a batch with the wrong count), projected to all
tasks. Writes `bench/results/ml_backend.json`.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import platform
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from studio_env import CACHE, RESULTS, start_label_studio

from guides import example_guide_path, load_guide
from labeling.gateway import build_label_config
from labeling.local_server import LocalLabelStudio, free_loopback_port
from labeling.studio_config import project_spec
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, write_pngs
from service.api.app import create_app
from service.api.serving import served
from service.auth.keys import create_key
from service.core.settings import LabelStudioSettings, MlBackendSettings, ModelSettings, Settings

WORK = CACHE / "ml-backend"
SEED = 200  # labeled test images the model is trained on
BASELINE_CALLS = 40
MAX_ACTIONS = 8
STUDIO_DEFAULT_PREDICT_TIMEOUT_S = 100.0  # Label Studio's ML_TIMEOUT_PREDICT, left as it is


def counting(app: ASGIApp, calls: list[tuple[int, float, float]]) -> ASGIApp:
    """`app`, noting (tasks, received, answered) of every `/predict` request it receives.

    The two are `time.perf_counter()` readings: the whole body read, the answer sent.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/ml-backend/predict"):
            await app(scope, receive, send)
            return
        messages: list[Message] = []
        while not messages or messages[-1].get("more_body", False):
            messages.append(await receive())
        tasks = len(json.loads(b"".join(m.get("body", b"") for m in messages))["tasks"])
        started = time.perf_counter()

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)
        calls.append((tasks, started, time.perf_counter()))

    return wrapped


@contextmanager
def serve_folder(folder: Path) -> Iterator[int]:
    """A loopback HTTP server for the files of `folder`; yields its port."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_service(
    settings: Settings, port: int, calls: list[tuple[int, float, float]]
) -> Iterator[str]:
    """The service in this process on `port`, its `/predict` calls counted; yields an API key."""
    app = create_app(settings)
    with served(counting(app, calls), port):
        with app.state.context.sessions() as session:
            yield create_key(session, "label studio").token.get_secret_value()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    os.environ.pop("ML_TIMEOUT_PREDICT", None)  # Label Studio's default, as admins run it
    server = start_label_studio("ml-backend-label-studio")
    try:
        result = run(server, args.tasks)
    finally:
        server.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ml_backend.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def run(server: LocalLabelStudio, tasks: int) -> dict[str, Any]:
    images = tasks + 1 + BASELINE_CALLS
    pool, new = _write_images(images)
    port = free_loopback_port()
    calls: list[tuple[int, float, float]] = []
    with serve_folder(new) as image_port:
        settings = _settings(server, port, pool, [f"127.0.0.1:{image_port}"])
        with running_service(settings, port, calls) as key:
            service = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=900,
            )
            version = _train(service, pool)
            studio = httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Token {server.api_token}"},
                timeout=900,
            )
            project_id = _project(studio, settings, f"http://127.0.0.1:{port}/v1/ml-backend", key)
            urls = [f"http://127.0.0.1:{image_port}/{n:05d}.png" for n in range(images)]
            # Tasks, then images kept apart for the baseline (never cached by an action).
            urls, apart = urls[:tasks], urls[tasks:]
            studio.post(
                f"/api/projects/{project_id}/import", json=[{"data": {"image": u}} for u in urls]
            ).raise_for_status()
            _per_task_baseline(port, key, apart[:1])  # warm: the model's first run sets up
            calls.clear()
            actions = _retrieve_until_done(studio, project_id, version, tasks, calls)
            retrieved = list(calls)  # the baseline's calls below are not Label Studio's
            per_task_s = _per_task_baseline(port, key, apart[1:])
    return _summary(tasks, actions, retrieved, per_task_s, version, settings)


def _retrieve_until_done(
    studio: httpx.Client,
    project_id: int,
    version: str,
    tasks: int,
    calls: list[tuple[int, float, float]],
) -> list[dict[str, Any]]:
    """Run "Retrieve predictions" over all tasks until each holds one (or one adds none)."""
    actions: list[dict[str, Any]] = []
    stored = 0
    while stored < tasks and len(actions) < MAX_ACTIONS:
        first_call, started = len(calls), time.perf_counter()
        studio.post(
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": True, "excluded": []}},
        ).raise_for_status()
        seconds = time.perf_counter() - started
        now = _predictions_of(studio, project_id, version)
        made = calls[first_call:]
        actions.append(
            {
                "tasks_per_call": [n for n, _, _ in made],
                "predicted": now - stored,
                "seconds": round(seconds, 2),
                "service_seconds": round(sum(end - begin for _, begin, end in made), 2),
            }
        )
        print(f"action {len(actions)}: {actions[-1]}", flush=True)
        if now == stored:
            break
        stored = now
    return actions


def _summary(
    tasks: int,
    actions: list[dict[str, Any]],
    calls: list[tuple[int, float, float]],
    per_task_s: float,
    version: str,
    settings: Settings,
) -> dict[str, Any]:
    predicted = sum(a["predicted"] for a in actions)
    seconds = sum(a["seconds"] for a in actions)
    service_s = sum(end - begin for _, begin, end in calls)
    longest_s = max((end - begin for _, begin, end in calls), default=0.0)
    return {
        "tasks": tasks,
        "predict_calls": len(calls),
        "tasks_per_call": [n for n, _, _ in calls],
        "seconds": round(seconds, 2),  # all "Retrieve predictions" actions together
        "actions_to_cover_all": len(actions) if predicted == tasks else None,
        "predicted_per_action": [a["predicted"] for a in actions],
        "seconds_per_action": [a["seconds"] for a in actions],
        "service_seconds": round(service_s, 2),  # answering /predict, inside `seconds`
        "longest_call_s": round(longest_s, 2),
        "predict_budget_s": settings.ml_backend.predict_budget_s,
        "within_default_predict_timeout": longest_s < STUDIO_DEFAULT_PREDICT_TIMEOUT_S,
        "service_images_per_s": round(tasks / max(service_s, 1e-9), 1),
        "tasks_per_s": round(tasks / seconds, 1),
        "predictions_stored": predicted,
        "model_version": version,
        "per_task_call_s": round(per_task_s, 4),
        "per_task_projected_s": round(per_task_s * tasks, 1),
        "service_speedup_vs_per_task": round(per_task_s * tasks / max(service_s, 1e-9), 2),
        "image_size": settings.model.image_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).date().isoformat(),
    }


def _write_images(count: int) -> tuple[Path, Path]:
    """Seed images (test split, labeled) and the new ones (training split), as PNG files."""
    test_images, _ = load_fashion_mnist("test")
    train_images, _ = load_fashion_mnist("train")
    pool, new = WORK / "roots" / "pool", WORK / "new"
    write_pngs(test_images[:SEED], pool, names=[f"{n:05d}.png" for n in range(SEED)])
    write_pngs(train_images[:count], new, names=[f"{n:05d}.png" for n in range(count)])
    return pool, new


def _settings(server: LocalLabelStudio, port: int, pool: Path, hosts: list[str]) -> Settings:
    data_dir = WORK / "service"
    shutil.rmtree(data_dir, ignore_errors=True)
    return Settings(
        data_dir=data_dir,
        public_url=f"http://127.0.0.1:{port}",
        allowed_roots=[pool.parent],
        label_studio=LabelStudioSettings(
            url=server.url, api_key=SecretStr(server.api_token), reconcile_every_s=0
        ),
        model=ModelSettings(device="cpu"),
        ml_backend=MlBackendSettings(allowed_hosts=[*hosts, f"127.0.0.1:{server.port}"]),
    )


def _train(service: httpx.Client, pool: Path) -> str:
    """Register and label the seed images, train; the active version."""
    _, labels = load_fashion_mnist("test")
    _wait(service, service.post("/v1/images/register", json={"folder": str(pool)}).json())
    items = service.get("/v1/images", params={"limit": 1000}).json()["items"]
    body = [
        {"image_id": i["id"], "label": FASHION_MNIST_CLASSES[labels[int(Path(i["path"]).stem)]]}
        for i in items
    ]
    service.post("/v1/labels", json={"labels": body}).raise_for_status()
    return str(_wait(service, service.post("/v1/models/train").json())["model_version"])


def _wait(service: httpx.Client, accepted: dict[str, Any]) -> dict[str, Any]:
    while (job := service.get(accepted["status_url"]).json())["status"] in ("queued", "running"):
        time.sleep(0.5)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job failed: {job}")
    return dict(job["result"])


def _project(studio: httpx.Client, settings: Settings, url: str, key: str) -> int:
    """An admin's project, with the service connected as its model (Basic Authentication)."""
    guide = load_guide(settings.guide_path or example_guide_path("fashion-mnist"))
    config = build_label_config(project_spec(guide, title="ml backend bench"))
    project = studio.post(
        "/api/projects", json={"title": "ml backend bench", "label_config": config}
    ).raise_for_status()
    project_id = int(project.json()["id"])
    studio.post(
        "/api/ml",
        json={
            "project": project_id,
            "url": url,
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": "labelstudio",
            "basic_auth_pass": key,
        },
    ).raise_for_status()
    return project_id


def _predictions_of(studio: httpx.Client, project_id: int, version: str) -> int:
    """How many tasks hold a prediction of `version`."""
    count, page = 0, 1
    while True:
        response = studio.get(
            "/api/tasks",
            params={"project": project_id, "fields": "all", "page": page, "page_size": 500},
        )
        if response.status_code == 404:
            return count
        body = response.raise_for_status().json()
        count += sum(
            any(p["model_version"] == version for p in task["predictions"])
            for task in body["tasks"]
        )
        if page * 500 >= body["total"]:
            return count
        page += 1


def _per_task_baseline(port: int, key: str, urls: list[str]) -> float:
    """Mean seconds of one `/predict` call carrying one task (Label Studio's fallback)."""
    auth = base64.b64encode(f"labelstudio:{key}".encode()).decode()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Basic {auth}"}
    ) as client:
        started = time.perf_counter()
        for url in urls:
            body = {"tasks": [{"id": 0, "data": {"image": url}}]}
            assert "result" in client.post("/v1/ml-backend/predict", json=body).json()["results"][0]
        return (time.perf_counter() - started) / len(urls)


if __name__ == "__main__":
    main()
