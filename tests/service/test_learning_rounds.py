"""Rounds through the batch-selection contract, embeddings in the vector store, evaluated and
calibrated versions, and exact rollback (no Label Studio needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from guides import example_guide_path
from models.checkpoint import load_checkpoint
from models.datasets import FASHION_MNIST_CLASSES
from models.selection import DEFAULT_STRATEGY, SelectionInputs, select_batch
from service.core.orm import Embedding, Image, ModelVersion
from service.learning.selection import (
    RoundRequest,
    candidate_images,
    round_items,
    select_round,
)
from service.learning.strategies import display_score
from service.learning.training import labeled_images
from service.pool.embeddings import ensure_embeddings
from tests.helpers import (
    ImagePool,
    api_client,
    image_ids_by_name,
    import_labels,
    make_settings,
    wait_for_job,
)


def context(client: TestClient) -> Any:
    return client.app.state.context  # type: ignore[attr-defined]


def train(client: TestClient) -> str:
    job = wait_for_job(client, client.post("/v1/models/train").json())
    assert job["status"] == "succeeded", job
    return str(job["result"]["model_version"])


def test_strategies_are_validated_at_request_time_and_listed(client: TestClient) -> None:
    refused = client.post("/v1/rounds", json={"k": 5, "strategy": "clairvoyance"})
    error = refused.json()["error"]
    assert refused.status_code == 422 and error["code"] == "unknown_strategy"
    assert {"badge", "kcenter", "typiclust", DEFAULT_STRATEGY} <= set(error["details"]["available"])
    listed = client.get("/v1/rounds/strategies").json()
    assert listed == {"available": error["details"]["available"], "default": DEFAULT_STRATEGY}


@pytest.mark.parametrize(
    ("strategy", "balanced"), [("kcenter", False), (None, False), ("margin", True)]
)
def test_a_round_is_the_strategys_batch_recomputed_from_stored_data(
    client: TestClient, fashion_pool: ImagePool, strategy: str | None, balanced: bool
) -> None:
    import_labels(client, fashion_pool, range(40))
    train(client)
    ctx = context(client)
    with ctx.sessions() as session:
        request = RoundRequest(
            k=12, strategy=strategy, retrain=False, seed=7, class_balanced=balanced
        )
        round_ = select_round(session, ctx, request)
        ordered = [item.image_id for item in round_items(session, round_.id)]
        scores = [item.score for item in round_items(session, round_.id)]
        pool = [image.id for image in candidate_images(session) if image.id not in ordered]
        labeled = labeled_images(session, ctx.guide.label_names)
        model = session.get(ModelVersion, round_.model_version)
        assert model is not None
    assert round_.strategy == (strategy or DEFAULT_STRATEGY) and round_.seed == 7
    assert round_.class_balanced is balanced
    # Recompute independently: the store's vectors, the checkpoint's head, the stored seed.
    store = ctx.runtime.embedding_stores.get(ctx.runtime.backbone_id)
    head = load_checkpoint(model.checkpoint_path)
    pool_ids = np.array(sorted(pool + ordered))
    pool_ids = pool_ids[store.contains(pool_ids)]
    vectors = store.get(pool_ids)
    labels = [ctx.guide.label_index(str(image.label)) for image in labeled]
    inputs = SelectionInputs(
        probs=head.predict_proba(vectors),
        embeddings=vectors,
        labeled_embeddings=store.get(np.array([image.id for image in labeled])),
        labeled_labels=np.array(labels),
        k=12,
        seed=7,
        head=head,
    )
    expected = select_batch(round_.strategy, inputs, class_balanced=balanced)
    assert ordered == pool_ids[expected].tolist()
    assert scores == display_score(round_.strategy)(inputs.probs)[expected].tolist()
    # The pool was embedded once, by the semi-supervised training it learned from: the round
    # found every image's embedding stored.
    assert (round_.pool_size, round_.embedded) == (len(pool_ids), 0)


def test_legacy_database_blobs_move_into_the_store_without_the_backbone(
    client: TestClient,
) -> None:
    ctx = context(client)
    with ctx.sessions() as session:
        images = list(session.scalars(select(Image).order_by(Image.id).limit(6)))
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(6, 1280)).astype(np.float32)
        rows = [
            {"image_id": image.id, "backbone_id": ctx.runtime.backbone_id, "vector": v.tobytes()}
            for image, v in zip(images, vectors, strict=True)
        ]
        session.execute(insert(Embedding), rows)
        session.commit()
        stored = ensure_embeddings(session, ctx.runtime, images)
        session.commit()
        left = session.scalar(select(func.count()).select_from(Embedding))
    assert stored.computed == 0 and left == 0  # copied, not embedded again; the table emptied
    for image, vector in zip(images, vectors, strict=True):
        assert stored.vectors[image.id].tobytes() == vector.tobytes()


def test_versions_are_evaluated_out_of_sample_and_calibrated(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    import_labels(client, fashion_pool, range(60))
    version = train(client)
    shown = client.get(f"/v1/models/{version}").json()
    evaluation = shown["evaluation"]
    assert (evaluation["n_labels"], evaluation["n_evaluated"]) == (60, 60)
    assert "cross-validation" in evaluation["method"]
    assert set(evaluation["per_class_recall"]) == set(FASHION_MNIST_CLASSES)
    assert 0.3 < evaluation["accuracy"] <= 1.0  # ten classes: chance is 0.1
    assert 0 <= evaluation["calibrated_ece"] and 0 <= evaluation["ece"]
    listed = client.get("/v1/models").json()["items"]
    assert [m["evaluation"] for m in listed if m["id"] == version] == [evaluation]
    ctx = context(client)
    with ctx.sessions() as session:
        model = session.get(ModelVersion, version)
        assert model is not None
    head = load_checkpoint(model.checkpoint_path)
    assert head.temperature == evaluation["temperature"] != 1.0  # what predictions use


def test_rollback_restores_byte_equal_predictions(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    ids = image_ids_by_name(client)
    probe = [ids[f"{p:05d}.png"] for p in range(150, 170)]
    import_labels(client, fashion_pool, range(30))
    first = train(client)
    before = client.post("/v1/predictions", json={"image_ids": probe}).json()
    import_labels(client, fashion_pool, range(30, 90))
    second = train(client)
    moved = client.post("/v1/predictions", json={"image_ids": probe}).json()
    assert second != first and moved["model_version"] == second
    assert moved["items"] != before["items"]
    activated = client.post(f"/v1/models/{first}/activate")
    assert activated.status_code == 200 and activated.json()["model"]["active"]
    after = client.post("/v1/predictions", json={"image_ids": probe}).json()
    assert after["model_version"] == first
    assert _probability_bytes(after) == _probability_bytes(before)
    # A process that loads the checkpoint from disk predicts the same bytes.
    ctx = context(client)
    with ctx.sessions() as session:
        model = session.get(ModelVersion, first)
        assert model is not None
        vectors = np.stack(
            [
                v
                for _, v in sorted(
                    ensure_embeddings(session, ctx.runtime, _images(session, probe)).vectors.items()
                )
            ]
        )
    cached = ctx.runtime.head(first, model.checkpoint_path).predict_proba(vectors)
    assert (
        load_checkpoint(model.checkpoint_path).predict_proba(vectors).tobytes() == cached.tobytes()
    )


def _images(session: Any, image_ids: list[int]) -> list[Image]:
    return list(session.scalars(select(Image).where(Image.id.in_(image_ids))))


def _probability_bytes(predictions: dict[str, Any]) -> bytes:
    rows = [
        [item["probabilities"][name] for name in FASHION_MNIST_CLASSES]
        for item in predictions["items"]
    ]
    return np.array(rows, dtype=np.float64).tobytes()


def guide_with_selection(tmp_path: Path, selection: str) -> Path:
    path = tmp_path / "guide.yaml"
    text = example_guide_path("fashion-mnist").read_text()
    path.write_text(text.split("\nselection:")[0] + "\nselection:\n" + selection)
    return path


def test_the_guide_names_the_default_strategy_and_class_balancing(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    guide = guide_with_selection(tmp_path, "  strategy: kcenter\n  class_balanced: true\n")
    settings = make_settings(tmp_path, fashion_pool, guide_path=guide)
    with api_client(settings) as test_client:
        assert test_client.get("/v1/rounds/strategies").json()["default"] == "kcenter"
        accepted = test_client.post("/v1/rounds", json={"k": 5}).json()
        job = test_client.get(f"/v1/jobs/{accepted['job_id']}").json()
        assert job["params"]["strategy"] == "kcenter" and job["params"]["class_balanced"] is True
        test_client.post(f"/v1/jobs/{accepted['job_id']}/cancel")
    unknown = guide_with_selection(tmp_path, "  strategy: clairvoyance\n")
    with api_client(make_settings(tmp_path, fashion_pool, guide_path=unknown)) as test_client:
        refused = test_client.post("/v1/rounds", json={"k": 5})
        assert refused.status_code == 422
        assert "the guide's selection.strategy 'clairvoyance'" in refused.json()["error"]["message"]
        named = test_client.post("/v1/rounds", json={"k": 5, "strategy": "margin"})
        assert named.status_code == 202
