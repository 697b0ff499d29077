"""The guide's `training.head` in the service: the pool's graph, kept and extended, and the head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from models.knn_graph import KnnGraph
from service.learning.heads import SEMI_SUPERVISED, held_back
from service.learning.pool_graph import graph_dir, pool_affinity
from service.pool.embeddings import embedding_store
from tests.helpers import (
    ImagePool,
    api_client,
    import_labels,
    make_settings,
    register_pool,
    wait_for_job,
)


def train(client: TestClient) -> dict:
    job = wait_for_job(client, client.post("/v1/models/train").json())
    assert job["status"] == "succeeded", job
    return client.get(f"/v1/models/{job['result']['model_version']}").json()


def test_the_default_head_learns_from_the_pool_and_is_judged_on_confirmed_labels(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    import_labels(client, fashion_pool, range(40))
    model = train(client)
    assert model["head"] == "semi_supervised"
    assert model["n_train"] == 40
    assert model["metrics"]["pseudo_labels"] > 0
    assert model["evaluation"]["n_labels"] == 40
    assert model["evaluation"]["n_evaluated"] == 40  # held-out confirmed labels only
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        store = embedding_store(session, context.runtime)
    assert store is not None and len(store) >= 200  # the unlabeled pool was embedded
    saved = KnnGraph.load(graph_dir(store, SEMI_SUPERVISED.k))
    assert np.array_equal(saved.ids, store.ids())
    audit = client.get("/v1/audit", params={"action": "model.trained"}).json()["items"]
    assert audit[0]["after"]["head"] == "semi_supervised"

    # The same labels and pool give the same version: nothing is rebuilt, nothing changes.
    assert pool_affinity(store, SEMI_SUPERVISED).built == 0
    again = wait_for_job(client, client.post("/v1/models/train").json())
    assert again["result"]["model_version"] == model["id"]


def test_new_embeddings_extend_the_saved_graph_instead_of_rebuilding_it(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    import_labels(client, fashion_pool, range(40))
    train(client)
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        store = embedding_store(session, context.runtime)
    assert store is not None
    before = len(store)
    extra = np.arange(10_000_000, 10_000_025, dtype=np.int64)
    store.append(extra, store.get(store.ids()[:25]) + 0.01)
    affinity = pool_affinity(store, SEMI_SUPERVISED)
    assert affinity.built == 25  # only the new rows were searched
    assert len(affinity.ids) == before + 25
    assert np.array_equal(KnnGraph.load(graph_dir(store, SEMI_SUPERVISED.k)).ids, store.ids())


def test_a_supervised_guide_trains_on_confirmed_labels_alone(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    guide = tmp_path / "guide.yaml"
    text = Path("guides/examples/fashion-mnist.yaml").read_text()
    guide.write_text(text + "\ntraining:\n  head: supervised\n")
    settings = make_settings(tmp_path, fashion_pool, guide_path=guide)
    with api_client(settings) as client:
        register_pool(client, str(fashion_pool.folder))
        import_labels(client, fashion_pool, range(40))
        model = train(client)
    assert model["head"] == "supervised" and "pseudo_labels" not in model["metrics"]


def test_one_pool_image_in_five_is_held_back_from_pseudo_labels_by_its_id() -> None:
    ids = np.arange(1, 100_001, dtype=np.int64)
    held = held_back(ids)
    assert abs(held.mean() - 1 / 5) < 0.01
    assert np.array_equal(held, held_back(ids.copy()))  # a property of the id alone
    assert np.array_equal(held_back(ids[::7]), held[::7])
