"""Label Studio's ML backend protocol: auth, setup, predictions for many tasks, training."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labeling.gateway import build_label_config
from labeling.studio_config import project_spec
from models.datasets import FASHION_MNIST_CLASSES
from service.context import ServiceContext
from service.core.settings import MlBackendSettings
from tests.helpers import (
    ImagePool,
    api_client,
    image_ids_by_name,
    make_settings,
    register_pool,
    wait_for_job,
)
from tests.image_host import ImageHost, Route, image_host

ML = "/v1/ml-backend"


@dataclass
class Backend:
    client: TestClient
    host: ImageHost
    pool: ImagePool
    key: str
    version: str

    @property
    def context(self) -> ServiceContext:
        return self.client.app.state.context  # type: ignore[attr-defined, no-any-return]

    def basic(self, password: str | None = None, user: str = "labelstudio") -> dict[str, str]:
        raw = f"{user}:{self.key if password is None else password}".encode()
        return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}

    def predict(self, tasks: list[dict[str, Any]], **body: Any) -> Any:
        response = self.client.post(
            f"{ML}/predict", json={"tasks": tasks, **body}, headers=self.basic()
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, fashion_pool: ImagePool) -> Iterator[Backend]:
    """A service with a trained model, and an allowed image host serving pool images."""
    with image_host() as host:
        settings = make_settings(
            tmp_path_factory.mktemp("ml-backend"),
            fashion_pool,
            ml_backend=MlBackendSettings(allowed_hosts=[host.host], fetch_max_bytes=50_000),
        )
        with api_client(settings) as client:
            register_pool(client, str(fashion_pool.folder))
            version = _train(client, fashion_pool)
            key = client.headers["Authorization"].removeprefix("Bearer ")
            yield Backend(client, host, fashion_pool, key, version)


def _train(client: TestClient, pool: ImagePool) -> str:
    ids = image_ids_by_name(client)
    labels = [
        {"image_id": ids[f"{p:05d}.png"], "label": FASHION_MNIST_CLASSES[pool.labels[p]]}
        for p in range(40)
    ]
    assert client.post("/v1/labels", json={"labels": labels}).status_code == 200
    job = wait_for_job(client, client.post("/v1/models/train").json())
    assert job["status"] == "succeeded", job
    return str(job["result"]["model_version"])


def _serve(backend: Backend, position: int) -> str:
    """Serve pool image `position` from the allowed host; its URL."""
    path = f"/images/{position:05d}.png"
    body = (backend.pool.folder / f"{position:05d}.png").read_bytes()
    backend.host.routes[path] = Route(body=body)
    return backend.host.url + path


@contextmanager
def _budget(backend: Backend, seconds: float, batch_size: int) -> Iterator[None]:
    """The service's `/predict` time budget and batch size set for a while."""
    config = backend.context.settings.ml_backend
    before = (config.predict_budget_s, config.predict_batch_size)
    config.predict_budget_s, config.predict_batch_size = seconds, batch_size
    try:
        yield
    finally:
        config.predict_budget_s, config.predict_batch_size = before


def _labels_by_id(backend: Backend, image_ids: list[int]) -> list[str]:
    response = backend.client.post("/v1/predictions", json={"image_ids": image_ids})
    return [item["label"] for item in response.json()["items"]]


def test_every_call_needs_the_key_as_basic_password_or_bearer(backend: Backend) -> None:
    anonymous = {"Authorization": ""}
    for method, path in (("GET", "health"), ("POST", "setup"), ("POST", "predict")):
        response = backend.client.request(method, f"{ML}/{path}", json={}, headers=anonymous)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "missing_api_key"
        assert "Basic Authentication" in response.json()["error"]["message"]
    wrong = backend.client.get(f"{ML}/health", headers=backend.basic("al_00000000_nope"))
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
    garbled = backend.client.get(f"{ML}/health", headers={"Authorization": "Basic ***"})
    assert (garbled.status_code, garbled.json()["error"]["code"]) == (401, "invalid_api_key")
    for user in ("labelstudio", "anything-at-all"):
        answer = backend.client.get(f"{ML}/health", headers=backend.basic(user=user))
        assert answer.json() == {"status": "UP", "model_class": "activelabel"}
    assert backend.client.get(f"{ML}/health").status_code == 200  # the Bearer key


def test_label_studios_protocol_tolerates_extra_query_parameters_the_api_refuses(
    backend: Backend,
) -> None:
    """Label Studio owns the ML backend's protocol: a parameter it adds is ignored there."""
    extra = {"project": "1.1700000000", "verbose": "true"}
    health = backend.client.get(f"{ML}/health", params=extra, headers=backend.basic())
    assert health.json() == {"status": "UP", "model_class": "activelabel"}
    setup = backend.client.post(f"{ML}/setup", params=extra, json={}, headers=backend.basic())
    assert setup.json() == {"model_version": backend.version}
    refused = backend.client.get("/v1/images", params={"verbose": "true", "limit": 1})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
    (problem,) = refused.json()["error"]["details"]
    assert problem["location"] == "query.verbose" and "cursor, limit" in problem["message"]


def test_setup_answers_the_active_version_and_refuses_a_foreign_config(backend: Backend) -> None:
    config = build_label_config(project_spec(backend.context.guide, title="x"))
    body = {
        "project": "3.1700000000",
        "schema": config,
        "hostname": "http://ls",
        "access_token": "t",
    }
    setup = backend.client.post(f"{ML}/setup", json=body, headers=backend.basic())
    assert setup.json() == {"model_version": backend.version}
    assert backend.client.get(f"{ML}/versions").json()["versions"][0] == backend.version

    foreign = config.replace('value="Coat"', 'value="Cat"').replace("T-shirt/top", "Dog")
    for label in FASHION_MNIST_CLASSES:
        foreign = foreign.replace(f'value="{label}"', 'value="Other"')
    refused = backend.client.post(
        f"{ML}/setup", json={**body, "schema": foreign}, headers=backend.basic()
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "label_config_mismatch")
    garbage = backend.client.post(
        f"{ML}/setup", json={**body, "schema": "<View><Image"}, headers=backend.basic()
    )
    assert (garbage.status_code, garbage.json()["error"]["code"]) == (
        422,
        "label_config_unsupported",
    )


def test_many_tasks_get_one_answer_each_in_order(backend: Backend) -> None:
    ids = image_ids_by_name(backend.client)
    stored = [ids[f"{p:05d}.png"] for p in (100, 101, 102)]
    signer = backend.context.media
    fetched_positions = (103, 104)
    tasks = [
        {"id": 1, "data": {"image": "http://elsewhere.test/x.png", "image_id": stored[0]}},
        {"id": 2, "data": {"image": _serve(backend, fetched_positions[0])}},
        {"id": 3, "data": {"image": signer.url(stored[1])}},  # the service's own media URL
        {"id": 4, "data": {"image": "http://127.0.0.1:9/not-allowed.png"}},
        {"id": 5, "data": {"image": _serve(backend, fetched_positions[1])}},
        {"id": 6, "data": {"image_id": stored[2], "image": ""}},
        {"id": 7, "data": {"text": "no image"}},
        {"id": 8, "data": {"image": "s3://bucket/key.png"}},
    ]
    body = backend.predict(tasks)
    results = body["results"]
    assert len(results) == len(tasks) and body["model_version"] == backend.version
    expected = _labels_by_id(backend, [stored[0], ids["00103.png"], stored[1]])
    expected += _labels_by_id(backend, [ids["00104.png"], stored[2]])
    predicted = [results[n] for n in (0, 1, 2, 4, 5)]
    assert [r["result"][0]["value"]["choices"] for r in predicted] == [[e] for e in expected]
    for result in predicted:
        assert result["model_version"] == backend.version and 0 < result["score"] <= 1
        assert result["result"][0]["from_name"] == "label"
        assert result["result"][0]["to_name"] == "image"
    errors = {results[n]["task"]: results[n]["error"]["code"] for n in (3, 6, 7)}
    assert errors == {4: "host_not_allowed", 7: "no_image", 8: "unsupported_url"}
    assert all("result" not in results[n] for n in (3, 6, 7))


def test_a_corrupt_or_oversized_image_does_not_sink_the_batch(backend: Backend) -> None:
    good = _serve(backend, 110)
    png = (backend.pool.folder / "00111.png").read_bytes()
    backend.host.routes["/bad/truncated.png"] = Route(body=png[:60])
    backend.host.routes["/bad/text.png"] = Route(body=b"not an image at all")
    backend.host.routes["/bad/huge.png"] = Route(body=b"\x89PNG" + b"0" * 60_000)
    backend.host.routes["/bad/missing.png"] = Route(404, b"gone")
    backend.host.routes["/bad/away.png"] = Route(302, headers={"Location": "http://127.0.0.1:9/x"})
    backend.host.routes["/bad/hop.png"] = Route(302, headers={"Location": "/images/00110.png"})
    names = ["truncated", "text", "huge", "missing", "away", "hop"]
    tasks = [{"id": 0, "data": {"image": good}}] + [
        {"id": n + 1, "data": {"image": f"{backend.host.url}/bad/{name}.png"}}
        for n, name in enumerate(names)
    ]
    results = backend.predict(tasks)["results"]
    assert len(results) == len(tasks)
    assert "result" in results[0] and "result" in results[6]  # a redirect on the allowed host
    assert results[6]["result"] == results[0]["result"]
    codes = [results[n]["error"]["code"] for n in range(1, 6)]
    assert codes == [
        "image_corrupt",
        "not_an_image",
        "image_too_large",
        "fetch_http_error",
        "host_not_allowed",
    ]
    assert all(results[n]["error"]["message"] for n in range(1, 6))


def test_predictions_keep_to_the_choices_of_the_project_config(backend: Backend) -> None:
    spec = project_spec(backend.context.guide, title="x")
    kept = [c for c in spec.choices if c[0] in ("Bag", "Sneaker")]
    config = build_label_config(spec.__class__(**{**spec.__dict__, "choices": kept}))
    config = config.replace('name="label"', 'name="kind"').replace('name="image"', 'name="photo"')
    config = config.replace('toName="image"', 'toName="photo"').replace('"$image"', '"$picture"')
    tasks = [{"id": p, "data": {"picture": _serve(backend, p)}} for p in range(120, 130)]
    results = backend.predict(tasks, label_config=config)["results"]
    for result in results:
        (region,) = result["result"]
        assert (region["from_name"], region["to_name"]) == ("kind", "photo")
        assert region["value"]["choices"][0] in ("Bag", "Sneaker")


def test_bad_payloads_are_refused_readably(backend: Backend) -> None:
    for body in ({}, {"tasks": "x"}, {"tasks": [1, 2]}, {"tasks": [{}] * 10_001}):
        response = backend.client.post(f"{ML}/predict", json=body, headers=backend.basic())
        assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_request")
    not_xml = backend.client.post(
        f"{ML}/predict", json={"tasks": [], "label_config": "<<"}, headers=backend.basic()
    )
    assert not_xml.json()["error"]["code"] == "label_config_unsupported"
    assert backend.predict([])["results"] == []


def test_start_training_enqueues_the_train_job_once(backend: Backend) -> None:
    event = {"action": "START_TRAINING", "project": {"id": 3, "title": "p"}}
    anonymous = backend.client.post(f"{ML}/webhook", json=event, headers={"Authorization": ""})
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "missing_api_key")
    ignored = backend.client.post(
        f"{ML}/webhook", json={"action": "ANNOTATION_CREATED"}, headers={"Authorization": ""}
    )
    assert ignored.json() == {
        "action": "ANNOTATION_CREATED",
        "status": "ignored",
        "job": None,
        "status_url": None,
    }
    first = backend.client.post(f"{ML}/webhook", json=event, headers=backend.basic()).json()
    again = backend.client.post(f"{ML}/webhook", json=event, headers=backend.basic()).json()
    assert first["action"] == "START_TRAINING" and first["job"]
    if again["status"] in ("queued", "running"):
        assert again["job"] == first["job"]  # deduplicated while the first is active
    job = wait_for_job(backend.client, {"status_url": first["status_url"], "job_id": first["job"]})
    assert job["kind"] == "train" and job["status"] == "succeeded", job
    assert job["result"]["model_version"] == backend.version  # the same labels, the same version


def test_no_model_and_too_few_labels_answer_readable_errors(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    with api_client(make_settings(tmp_path, fashion_pool)) as client:
        assert client.post(f"{ML}/setup", json={}).json() == {"model_version": None}
        predict = client.post(f"{ML}/predict", json={"tasks": [{"data": {"image_id": 1}}]})
        assert (predict.status_code, predict.json()["error"]["code"]) == (409, "no_model")
        assert "train" in predict.json()["error"]["message"]
        train = client.post(f"{ML}/webhook", json={"action": "START_TRAINING"})
        assert (train.status_code, train.json()["error"]["code"]) == (409, "not_enough_labels")
        assert client.get(f"{ML}/versions").json() == {"versions": []}


def test_a_spent_budget_leaves_tasks_for_the_next_call_which_uses_the_cache(
    backend: Backend,
) -> None:
    ids = image_ids_by_name(backend.client)
    stored = [ids[f"{p:05d}.png"] for p in (140, 141)]  # embedded: nearly free
    positions = list(range(142, 147))  # fetched from the image host: new to the cache
    tasks = [{"id": n, "data": {"image_id": i, "image": ""}} for n, i in enumerate(stored)]
    tasks += [{"id": 10 + p, "data": {"image": _serve(backend, p)}} for p in positions]
    expected = _labels_by_id(backend, stored + [ids[f"{p:05d}.png"] for p in positions])
    cache = backend.context.fetched_embeddings
    with _budget(backend, 1e-6, batch_size=2):  # spent by the first batch that embeds
        first = backend.predict(tasks)["results"]
        hits = cache.hits
        # As if Label Studio had lost the first answer: every fetched task is asked again.
        second = backend.predict(tasks[2:])["results"]
    assert len(first) == len(tasks) and len(second) == len(tasks) - 2
    assert [_label(r) for r in first[:4]] == expected[:4]  # the free ones and one batch
    for result in first[4:] + second[4:]:
        assert "result" not in result and result["error"]["code"] == "over_budget"
        assert "budget of one call; retrieve predictions again" in result["error"]["message"]
    assert [_label(r) for r in second[:4]] == expected[2:6]  # the cache, then one more batch
    assert cache.hits - hits == 2
    third = backend.predict(tasks)["results"]  # the default budget: the rest fits
    assert [_label(r) for r in third] == expected
    assert cache.hits - hits == 2 + 4  # only the last image was embedded again


def _label(result: dict[str, Any]) -> str | None:
    return str(result["result"][0]["value"]["choices"][0]) if "result" in result else None
