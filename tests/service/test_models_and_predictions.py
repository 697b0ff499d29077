"""Model versions (active pointer, rollback) and predictions for pipelines."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import update

from models.datasets import FASHION_MNIST_CLASSES
from service.core.orm import Image
from service.learning.training import current_model, needs_training
from tests.helpers import (
    ImagePool,
    all_items,
    image_ids_by_name,
    import_labels,
    wait_for_job,
)


def seed_and_train(client: TestClient, pool: ImagePool, positions: range) -> str:
    import_labels(client, pool, positions)
    job = wait_for_job(client, client.post("/v1/models/train").json())
    assert job["status"] == "succeeded", job
    return str(job["result"]["model_version"])


def active_id(client: TestClient) -> str:
    return str(client.get("/v1/models/active").json()["id"])


def test_predictions_by_id_and_by_upload_come_from_the_active_version(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    ids = image_ids_by_name(client)
    wanted = [ids[f"{p:05d}.png"] for p in (200, 201, 202)]
    early = client.post("/v1/predictions", json={"image_ids": wanted})
    assert (early.status_code, early.json()["error"]["code"]) == (409, "no_model")
    version = seed_and_train(client, fashion_pool, range(30))

    by_id = client.post("/v1/predictions", json={"image_ids": wanted}).json()
    assert by_id["model_version"] == version and by_id["strategy"] == "entropy"
    assert [item["image_id"] for item in by_id["items"]] == wanted
    for item in by_id["items"]:
        probs = np.array([item["probabilities"][c] for c in FASHION_MNIST_CLASSES])
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert item["label"] == FASHION_MNIST_CLASSES[int(np.argmax(probs))]
        entropy = float(-(probs * np.log(np.clip(probs, 1e-12, None))).sum())
        assert item["uncertainty"] == pytest.approx(entropy, abs=1e-4)
        assert item["model_version"] == version

    files = [
        ("files", (f"{p:05d}.png", (fashion_pool.folder / f"{p:05d}.png").read_bytes()))
        for p in (200, 201, 202)
    ]
    by_upload = client.post("/v1/predictions", files=files).json()
    assert [item["filename"] for item in by_upload["items"]] == [
        "00200.png",
        "00201.png",
        "00202.png",
    ]
    for uploaded, stored in zip(by_upload["items"], by_id["items"], strict=True):
        assert uploaded["label"] == stored["label"]
        for name, p in stored["probabilities"].items():
            assert uploaded["probabilities"][name] == pytest.approx(p, abs=1e-4)
    assert client.get("/v1/images/counts").json()["total"] == len(fashion_pool.labels)


def test_predictions_refuse_bad_input_with_stable_codes(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    seed_and_train(client, fashion_pool, range(30))
    missing = client.post("/v1/predictions", json={"image_ids": [1, 10**6]})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert missing.json()["error"]["details"]["missing"] == [10**6]
    broken = client.post("/v1/predictions", files=[("files", ("x.png", b"\x89PNG\r\n\x1a\nnope"))])
    assert (broken.status_code, broken.json()["error"]["code"]) == (422, "invalid_image")
    empty = client.post("/v1/predictions", json={"image_ids": []})
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "bad_request")
    text = client.post("/v1/predictions", content=b"1,2", headers={"Content-Type": "text/csv"})
    assert (text.status_code, text.json()["error"]["code"]) == (415, "unsupported_media_type")
    buffer = io.BytesIO()
    PILImage.new("RGB", (30, 30), (0, 0, 0)).save(buffer, format="PNG")
    fine = client.post("/v1/predictions", files=[("files", ("black.png", buffer.getvalue()))])
    assert fine.status_code == 200 and len(fine.json()["items"]) == 1


def test_activation_rolls_back_and_a_reproduced_version_is_reused_and_activated(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    first = seed_and_train(client, fashion_pool, range(30))
    second = seed_and_train(client, fashion_pool, range(30, 40))
    assert first != second and active_id(client) == second
    listed = all_items(client, "/v1/models", limit=1)
    assert sorted(m["id"] for m in listed) == sorted([first, second])
    assert [m["id"] for m in listed if m["active"]] == [second]
    assert all(m["metrics"] for m in listed)

    rollback = client.post(f"/v1/models/{first}/activate").json()
    assert rollback["model"]["id"] == first and rollback["model"]["active"]
    assert rollback["refresh_job"] is not None  # waiting tasks get this version's suggestion
    assert active_id(client) == first
    assert client.post(f"/v1/models/{first}/activate").json()["refresh_job"] is None
    assert client.get(f"/v1/models/{second}").json()["active"] is False
    unknown = client.post("/v1/models/h-0000000000/activate")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert client.post(f"/v1/models/{'x' * 65}/activate").status_code == 422

    # "Found": the labels go back to what `first` saw; the retrain reproduces its hash, and
    # that row (not the newest by time) becomes active, so rounds stop retraining.
    client.post(f"/v1/models/{second}/activate")
    extra = [image_ids_by_name(client)[f"{p:05d}.png"] for p in range(30, 40)]
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        session.execute(
            update(Image).where(Image.id.in_(extra)).values(label=None, label_source=None)
        )
        session.commit()
    job = wait_for_job(client, client.post("/v1/models/train").json())
    assert job["result"]["model_version"] == first
    assert active_id(client) == first
    assert len(all_items(client, "/v1/models")) == 2
    with context.sessions() as session:
        assert not needs_training(session, current_model(session, context))
