"""Two rounds with a batch-aware strategy against a real Label Studio: the pushed order is the
strategy's, recomputed here from stored data, and planted near-duplicates never share a batch."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from models.checkpoint import load_checkpoint
from models.selection import SelectionInputs, select_batch
from service.core.orm import Image, ModelVersion
from tests.helpers import ImagePool, image_ids_by_name, register_pool
from tests.integration.flows import project_title, run_round, seed
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 12
COPIES = 20  # pool images given a near-copy each


def test_two_badge_rounds_push_the_strategys_order_without_near_duplicates(
    service: TestClient, fashion_pool: ImagePool, studio: StudioClient
) -> None:
    register_pool(service, str(fashion_pool.folder))
    pairs = plant_near_copies(service, fashion_pool)
    seeds = seed(service, fashion_pool, 3)
    project: dict[str, Any] | None = None
    chosen_before: list[int] = []
    for _ in range(2):
        round_ = run_round(service, K, strategy="badge")
        ordered = [item["image_id"] for item in round_["items"]]
        assert round_["strategy"] == "badge" and round_["seed"] is not None
        assert ordered == recompute(service, round_, seeds, exclude=chosen_before)
        project = project or studio.project_by_title(project_title(service))
        tasks = sorted(studio.tasks(project["id"]), key=lambda t: t["id"])[len(chosen_before) :]
        assert [task["data"]["image_id"] for task in tasks] == ordered  # pushed in that order
        picked = set(ordered)
        assert not any(a in picked and b in picked for a, b in pairs), "near-copies together"
        chosen_before += ordered


def plant_near_copies(service: TestClient, pool: ImagePool) -> list[tuple[int, int]]:
    """Register a near-copy (a few pixels brightened) of COPIES pool images; their id pairs."""
    folder = pool.root / f"near-copies-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    for position in range(100, 100 + COPIES):
        pixels = np.asarray(PILImage.open(pool.folder / f"{position:05d}.png")).copy()
        pixels[:2, :2] = np.minimum(pixels[:2, :2].astype(int) + 3, 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(folder / f"copy-{position:05d}.png")
    register_pool(service, str(folder))
    ids = image_ids_by_name(service)
    return [(ids[f"{p:05d}.png"], ids[f"copy-{p:05d}.png"]) for p in range(100, 100 + COPIES)]


def recompute(
    service: TestClient, round_: dict[str, Any], seeds: set[int], *, exclude: list[int]
) -> list[int]:
    """The round's batch from the store, the version's checkpoint and the round's seed."""
    ctx = service.app.state.context  # type: ignore[attr-defined]
    with ctx.sessions() as session:
        rows = session.query(Image).filter(Image.unusable_reason.is_(None)).all()
        labeled = sorted((i.id, ctx.guide.label_index(str(i.label))) for i in rows if i.label)
        pool = sorted(i.id for i in rows if not i.label and i.id not in set(exclude))
        version = session.get(ModelVersion, round_["model_version"])
        assert version is not None
    assert {image_id for image_id, _ in labeled} == seeds
    store = ctx.runtime.embedding_stores.get(ctx.runtime.backbone_id)
    pool_ids = np.array(pool)
    vectors = store.get(pool_ids)
    head = load_checkpoint(version.checkpoint_path)
    inputs = SelectionInputs(
        probs=head.predict_proba(vectors),
        embeddings=vectors,
        labeled_embeddings=store.get(np.array([image_id for image_id, _ in labeled])),
        labeled_labels=np.array([label for _, label in labeled]),
        k=K,
        seed=int(round_["seed"]),
        head=head,
    )
    return pool_ids[select_batch("badge", inputs)].tolist()
