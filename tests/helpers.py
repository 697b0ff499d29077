"""Small helpers the tests share: settings, an authorised client, HTTP polling of jobs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import SecretStr

from models.datasets import FASHION_MNIST_CLASSES
from service.api.app import create_app
from service.auth.keys import create_key
from service.core.settings import LabelStudioSettings, ModelSettings, Settings

# Small inputs keep the CPU-only suite quick; the demo and benchmarks use the default 224.
TEST_IMAGE_SIZE = 96
# Headless Chromium from Debian, offline: the browser tests launch it with these.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POOL_SIZE = 240


@dataclass(frozen=True)
class ImagePool:
    root: Path  # the allowed root
    folder: Path  # the folder to register
    labels: list[int]  # true class index of <folder>/NNNNN.png, by position
    broken: list[Path]  # files that are not usable images


def make_settings(tmp_path: Path, pool: ImagePool, **overrides: object) -> Settings:
    """Settings for one test: its own data dir and database, the pool as the allowed root."""
    studio = overrides.pop(
        "label_studio",
        LabelStudioSettings(url="http://127.0.0.1:9", api_key=SecretStr("0" * 40), timeout_s=5),
    )
    values: dict[str, object] = {
        "data_dir": tmp_path / "service",
        "allowed_roots": [pool.root],
        "public_url": "http://127.0.0.1:8000",
        "label_studio": studio,
        "model": ModelSettings(image_size=TEST_IMAGE_SIZE, batch_size=32, train_epochs=200),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def api_client(settings: Settings) -> Iterator[TestClient]:
    """A started app whose client sends a key freshly created through the real key store."""
    app = create_app(settings)
    with TestClient(app) as client:
        with app.state.context.sessions() as session:
            issued = create_key(session, "tests")
        client.headers["Authorization"] = f"Bearer {issued.token.get_secret_value()}"
        yield client


def all_items(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list, following `next_cursor` to the last page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def wait_for_job(
    client: TestClient, accepted: dict[str, Any], *, timeout_s: float = 300
) -> dict[str, Any]:
    """Poll a job until it ends; returns its final status body."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(accepted["status_url"]).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {accepted['job_id']} did not finish in {timeout_s}s")


def register_pool(client: TestClient, folder: str) -> dict[str, Any]:
    response = client.post("/v1/images/register", json={"folder": folder})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json())
    assert job["status"] == "succeeded", job
    return dict(job["result"])


def image_ids_by_name(client: TestClient) -> dict[str, int]:
    items = all_items(client, "/v1/images", limit=1000)
    return {item["path"].rsplit("/", 1)[-1]: item["id"] for item in items}


def import_labels(client: TestClient, pool: ImagePool, positions: range) -> None:
    """Confirm the true Fashion-MNIST class of the pool's images at ``positions``."""
    ids = image_ids_by_name(client)
    body = [
        {"image_id": ids[f"{p:05d}.png"], "label": FASHION_MNIST_CLASSES[pool.labels[p]]}
        for p in positions
    ]
    assert client.post("/v1/labels", json={"labels": body}).status_code == 200
