"""Pool hardening: links out of the roots, bad paths and ids, transient failures, guide edits."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient

from guides import example_guide_path
from labeling.local_server import free_loopback_port
from service.api.app import create_app
from service.auth.keys import create_key
from service.core.orm import Image
from service.pool.embeddings import ensure_embeddings
from tests.helpers import (
    ImagePool,
    api_client,
    image_ids_by_name,
    make_settings,
    register_pool,
    wait_for_job,
)

HUGE = "99999999999999999999999"


@pytest.fixture
def pool(tmp_path: Path, fashion_pool: ImagePool) -> ImagePool:
    """A private copy of 20 pool images (tests here change files), with a link leading out."""
    root = tmp_path / "root"
    folder = root / "pool"
    folder.mkdir(parents=True)
    for i in range(20):
        shutil.copy(fashion_pool.folder / f"{i:05d}.png", folder / f"{i:05d}.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(fashion_pool.folder / "00020.png", outside / "secret.png")
    (folder / "escape.png").symlink_to(outside / "secret.png")
    (folder / "inside.png").symlink_to(folder / "00000.png")  # a link within the roots is fine
    return ImagePool(root=root, folder=folder, labels=fashion_pool.labels[:20], broken=[])


@pytest.fixture
def client(tmp_path: Path, pool: ImagePool, database_url: str) -> Iterator[TestClient]:
    with api_client(make_settings(tmp_path, pool, database_url=database_url)) as test_client:
        yield test_client


def test_links_out_of_the_allowed_roots_are_skipped_and_never_served(
    client: TestClient, pool: ImagePool, tmp_path: Path
) -> None:
    result = register_pool(client, str(pool.folder))
    skipped = {Path(s["path"]).name: s["code"] for s in result["skipped"]}
    assert skipped == {"escape.png": "path_not_allowed"}
    assert result["registered"] == 21  # 20 files and the link inside the roots
    ids = image_ids_by_name(client)
    assert "escape.png" not in ids
    # A link that was inside when registered and is pointed outside later is refused too.
    link = pool.folder / "inside.png"
    image = _image(client, ids["inside.png"])
    assert client.get(image["media_url"]).status_code == 200
    link.unlink()
    link.symlink_to(tmp_path / "outside" / "secret.png")
    refused = client.get(image["media_url"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "path_not_allowed")


def _image(client: TestClient, image_id: int) -> dict[str, object]:
    items = client.get("/v1/images", params={"limit": 1000}).json()["items"]
    return next(item for item in items if item["id"] == image_id)


@pytest.mark.parametrize(
    "folder", ["/tmp/\x00/pool", "x" * 5000, "\x00"], ids=["nul-inside", "too-long", "nul-only"]
)
def test_unusable_folder_paths_get_a_422_with_a_stable_code(
    client: TestClient, folder: str
) -> None:
    response = client.post("/v1/images/register", json={"folder": folder})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_path"


@pytest.mark.parametrize(
    "path",
    [f"/v1/media/{HUGE}?exp=1&sig=x", f"/v1/rounds/{HUGE}", f"/v1/jobs/{HUGE}"],
    ids=["media", "round", "job"],
)
def test_ids_beyond_64_bits_are_a_client_error(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
    retry = client.post(f"/v1/images/{HUGE}/retry")
    assert (retry.status_code, retry.json()["error"]["code"]) == (422, "invalid_request")


def test_the_connection_stays_open_after_bad_requests(tmp_path: Path, pool: ImagePool) -> None:
    """A real server: each bad request is answered and the next one reuses the connection."""
    app = create_app(make_settings(tmp_path, pool))
    port = free_loopback_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_started(server)
        with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
            with app.state.context.sessions() as session:
                key = f"Authorization: Bearer {create_key(session, 't').token.get_secret_value()}"
            reader = conn.makefile("rb")
            for request in (
                _post("/v1/images/register", '{"folder": "/tmp/\\u0000/x"}', key),
                f"GET /v1/media/{HUGE}?exp=1&sig=x HTTP/1.1\r\nHost: t\r\n\r\n",
                f"GET /v1/rounds/{HUGE} HTTP/1.1\r\nHost: t\r\n{key}\r\n\r\n",
                "GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
            ):
                conn.sendall(request.encode())
                status = _read_response(reader)
                assert status < 500, request
            assert status == 200  # the last one, on the very same connection
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_started(server: uvicorn.Server) -> None:
    for _ in range(600):
        if server.started:
            return
        threading.Event().wait(0.1)
    raise AssertionError("the server did not start")


def _post(path: str, body: str, header: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\n{header}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )


def _read_response(reader: object) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; returns its status."""
    status_line = reader.readline()  # type: ignore[attr-defined]
    assert status_line, "the server closed the connection"
    status = int(status_line.split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):  # type: ignore[attr-defined]
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
        assert not (name.lower() == "connection" and value.strip() == "close"), line
    reader.read(length)  # type: ignore[attr-defined]
    return status


def test_a_file_unreadable_for_now_stays_in_the_pool(client: TestClient, pool: ImagePool) -> None:
    register_pool(client, str(pool.folder))
    context = client.app.state.context  # type: ignore[attr-defined]
    target = pool.folder / "00003.png"
    hidden = target.with_name("moved-away")
    target.rename(hidden)
    with context.sessions() as session:
        images = list(session.query(Image).order_by(Image.id))
        stored = ensure_embeddings(session, context.runtime, images)
        gone = next(i for i in images if i.path == str(target))
        assert stored.unreadable == [gone.id] and gone.unusable_reason is None
    hidden.rename(target)
    with context.sessions() as session:
        images = list(session.query(Image).order_by(Image.id))
        assert gone.id in ensure_embeddings(session, context.runtime, images).vectors


def test_an_unusable_image_comes_back_through_retry(client: TestClient, pool: ImagePool) -> None:
    register_pool(client, str(pool.folder))
    ids = image_ids_by_name(client)
    target = pool.folder / "00004.png"
    good = target.read_bytes()
    target.write_bytes(good[:50])  # damaged after registration
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        images = list(session.query(Image).order_by(Image.id))
        ensure_embeddings(session, context.runtime, images)
    assert _image(client, ids["00004.png"])["unusable_reason"]
    still = client.post(f"/v1/images/{ids['00004.png']}/retry")
    assert (still.status_code, still.json()["error"]["code"]) == (422, "invalid_image")
    target.write_bytes(good)  # fixed
    back = client.post(f"/v1/images/{ids['00004.png']}/retry")
    assert back.status_code == 200 and back.json()["unusable_reason"] is None
    entries = client.get("/v1/audit", params={"action": "image.retried"}).json()["items"]
    assert [e["subject"]["id"] for e in entries] == [str(ids["00004.png"])]
    missing = client.post("/v1/images/999999/retry")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")


def test_labels_removed_from_the_guide_are_kept_but_not_trained_on(
    tmp_path: Path, pool: ImagePool
) -> None:
    guide = yaml.safe_load(example_guide_path("fashion-mnist").read_text())
    names = [label["name"] for label in guide["labels"]]
    removed = names[pool.labels[0]]
    settings = make_settings(tmp_path, pool)
    with api_client(settings) as client:
        register_pool(client, str(pool.folder))
        ids = image_ids_by_name(client)
        labels = [
            {"image_id": ids[f"{i:05d}.png"], "label": names[y]} for i, y in enumerate(pool.labels)
        ]
        assert client.post("/v1/labels", json={"labels": labels}).status_code == 200
    guide["labels"] = [label for label in guide["labels"] if label["name"] != removed]
    guide["gold_tasks"] = [g for g in guide["gold_tasks"] if g["expected_label"] != removed]
    guide["class_priors"] = {name: 1 / 9 for name in names if name != removed}
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(guide))
    with api_client(settings.model_copy(update={"guide_path": smaller})) as client:
        job = wait_for_job(client, client.post("/v1/models/train").json())
        assert job["status"] == "succeeded", job
        expected = pool.labels.count(pool.labels[0])
        assert job["result"]["labels_outside_guide"] == {removed: expected}
        assert job["result"]["n_train"] == len(pool.labels) - expected
        kept = [i for i in client.get("/v1/labels").json()["items"] if i["label"] == removed]
        assert len(kept) == expected  # the labels themselves are kept
