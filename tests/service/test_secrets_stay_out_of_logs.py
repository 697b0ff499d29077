"""No secret (Label Studio token, webhook or signing secret, API key) reaches a log or body."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from models.datasets import FASHION_MNIST_CLASSES
from service.core.settings import AuthSettings, LabelStudioSettings
from service.studio.webhooks import SECRET_HEADER, WEBHOOK_PATH
from tests.helpers import (
    ImagePool,
    api_client,
    image_ids_by_name,
    make_settings,
    register_pool,
    wait_for_job,
)

STUDIO_TOKEN = "studio-token-5f1c0e9a7b3d4c2e8f6a"
WEBHOOK_SECRET = "webhook-secret-9d8c7b6a5f4e3d2c1b0a"
SIGNING_SECRET = "signing-secret-0a1b2c3d4e5f6a7b8c9d"
LOGGERS = (None, "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore", "service")


def test_a_whole_flow_logs_and_answers_no_secret(
    tmp_path: Path, fashion_pool: ImagePool, caplog: pytest.LogCaptureFixture
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    settings = make_settings(
        tmp_path,
        fashion_pool,
        label_studio=LabelStudioSettings(
            url="http://127.0.0.1:9",
            api_key=SecretStr(STUDIO_TOKEN),
            webhook_secret=SecretStr(WEBHOOK_SECRET),
            timeout_s=2,
        ),
        auth=AuthSettings(media_signing_secret=SecretStr(SIGNING_SECRET)),
    )
    bodies: list[str] = [repr(settings), str(settings.model_dump())]
    with api_client(settings) as client:
        api_key = client.headers["Authorization"].removeprefix("Bearer ")
        register_pool(client, str(fashion_pool.folder))
        ids = image_ids_by_name(client)
        labels = [
            {
                "image_id": ids[f"{p:05d}.png"],
                "label": FASHION_MNIST_CLASSES[fashion_pool.labels[p]],
            }
            for p in range(30)
        ]
        bodies.append(client.post("/v1/labels", json={"labels": labels}).text)
        round_job = wait_for_job(client, client.post("/v1/rounds", json={"k": 4}).json())
        assert round_job["error"]["code"] == "label_studio_unavailable"  # Label Studio is down
        bodies.append(str(round_job))
        version = client.get("/v1/models/active").json()["id"]
        bodies.append(client.post(f"/v1/models/{version}/activate").text)
        bodies.append(client.post("/v1/predictions", json={"image_ids": [ids["00100.png"]]}).text)
        page = client.get("/v1/images", params={"limit": 3})
        bodies.append(page.text)
        media = client.get(page.json()["items"][0]["media_url"], headers={"Authorization": ""})
        assert media.status_code == 200
        for path in ("/v1/rounds", "/v1/models", "/v1/jobs", "/v1/guide", "/health", "/metrics"):
            bodies.append(client.get(path).text)
        bodies.append(client.get("/v1/images", headers={"Authorization": "Bearer al_x"}).text)
        for secret in (WEBHOOK_SECRET, "wrong-secret"):
            response = client.post(
                WEBHOOK_PATH, json={"action": "PROJECT_UPDATED"}, headers={SECRET_HEADER: secret}
            )
            assert response.status_code < 500
            bodies.append(response.text)
        bodies.append(client.get("/openapi.json").text)
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request" in logged or "label_studio_unavailable" in logged  # logs were captured
    for secret in (STUDIO_TOKEN, WEBHOOK_SECRET, SIGNING_SECRET, api_key):
        assert secret not in logged
        for body in bodies:
            assert secret not in body
