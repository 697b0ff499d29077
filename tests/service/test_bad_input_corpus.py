"""The bad-input corpus: every case is refused with a 4xx and a stable code, and changes nothing.

One service (SQLite, a trained model, a small registered pool, links that lead out of the
allowed root) answers every case; the counts of images, labels, annotations, jobs, audit
entries, webhook events, rounds and model versions are compared before and after each one.
The regressions of the service review's findings are marked "found" in their ids.
"""

from __future__ import annotations

import contextlib
import io
import json
import select as select_module
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guides import GuideError, example_guide_path, load_guide
from labeling.local_server import free_loopback_port
from models.datasets import FASHION_MNIST_CLASSES
from models.embedding import EmbeddingResult
from models.images import load_rgb
from service.api.app import create_app
from service.api.serving import served
from service.audit.tables import AuditEntry
from service.auth.keys import create_key
from service.core.orm import Annotation, Image, ModelVersion, Round
from service.core.settings import LabelStudioSettings
from service.jobs.tables import Job
from service.pool.embeddings import ensure_embeddings
from service.studio.tables import WebhookEvent
from service.studio.webhooks import SECRET_HEADER
from tests.corpus.cases import CASES, LIMITS, SECRET, Case, Env, annotation_event
from tests.corpus.files import encoded, other_colour_models
from tests.helpers import ImagePool, api_client, image_ids_by_name, make_settings, wait_for_job


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, fashion_pool: ImagePool) -> Iterator[Env]:
    """The service with a trained model, 30 registered images and links leading out."""
    tmp = tmp_path_factory.mktemp("corpus")
    root, outside = tmp / "root", tmp / "outside"
    folder = root / "pool"
    folder.mkdir(parents=True)
    outside.mkdir()
    for i in range(30):
        shutil.copy(fashion_pool.folder / f"{i:05d}.png", folder / f"{i:05d}.png")
    shutil.copy(fashion_pool.folder / "00030.png", outside / "secret.png")
    (root / "escape.png").symlink_to(outside / "secret.png")  # a file link leading out
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)  # a folder link
    (root / "notes.txt").write_text("not a folder\n")
    studio = LabelStudioSettings(
        url="http://127.0.0.1:9",
        api_key=SecretStr("0" * 40),
        timeout_s=2,
        webhook_secret=SecretStr(SECRET),
        webhook_max_bytes=LIMITS["webhook"],
        reconcile_every_s=0,
    )
    settings = make_settings(
        tmp,
        ImagePool(root=root, folder=folder, labels=fashion_pool.labels[:30], broken=[]),
        label_studio=studio,
        max_upload_bytes=LIMITS["upload"],
        max_body_bytes=LIMITS["body"],
        max_multipart_bytes=LIMITS["multipart"],
    )
    with api_client(settings) as client:
        registered = wait_for_job(
            client, client.post("/v1/images/register", json={"folder": str(folder)}).json()
        )
        assert registered["status"] == "succeeded", registered
        ids = image_ids_by_name(client)
        seeds = [
            {"image_id": ids[f"{i:05d}.png"], "label": FASHION_MNIST_CLASSES[label]}
            for i, label in enumerate(fashion_pool.labels[:20])
        ]
        assert client.post("/v1/labels", json={"labels": seeds}).status_code == 200
        trained = wait_for_job(client, client.post("/v1/models/train").json())
        assert trained["status"] == "succeeded", trained
        yield Env(client, root, folder, outside, ids, finished_job=registered["id"])


def counts(session: Session) -> dict[str, int]:
    """How many rows of everything a request could add or change."""
    tables = {
        "images": select(func.count()).select_from(Image),
        "labels": select(func.count()).where(Image.label.is_not(None)),
        "annotations": select(func.count()).select_from(Annotation),
        "jobs": select(func.count()).select_from(Job),
        "audit": select(func.count()).select_from(AuditEntry),
        "webhook_events": select(func.count()).select_from(WebhookEvent),
        "rounds": select(func.count()).select_from(Round),
        "models": select(func.count()).select_from(ModelVersion),
    }
    return {name: int(session.scalar(query) or 0) for name, query in tables.items()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_4xx_with_a_stable_code_and_changes_nothing(env: Env, case: Case) -> None:
    sessions = env.client.app.state.context.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        before = counts(session)
    method, url, kwargs = case.request(env)
    response = env.client.request(method, url, **kwargs)
    assert (response.status_code, response.json()["error"]["code"]) == (case.status, case.code), (
        response.text[:500]
    )
    with sessions() as session:
        assert counts(session) == before


def test_the_corpus_has_at_least_thirty_distinct_cases() -> None:
    assert len({case.id for case in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize("filename", sorted(other_colour_models()))
def test_other_colour_models_are_accepted_and_decode_as_rgb(env: Env, filename: str) -> None:
    """CMYK, 16-bit grey, palette and alpha images are registered and read as 8-bit RGB."""
    content, stored_mode = other_colour_models()[filename]
    response = env.client.post("/v1/images/upload", files={"file": (filename, content)})
    assert response.status_code == 201, response.text
    image = response.json()
    assert (image["width"], image["height"], image["unusable_reason"]) == (40, 40, None)
    with PILImage.open(io.BytesIO(env.client.get(image["media_url"]).content)) as served:
        assert served.mode == stored_mode  # served as uploaded
    decoded = load_rgb(image["path"])
    assert (decoded.mode, decoded.size) == ("RGB", (40, 40))
    if stored_mode != "I;16":  # a grey image has no hue to keep; the others keep their colours
        red, green, _ = np.asarray(decoded, dtype=np.float64).transpose(2, 0, 1)
        assert red[:, -1].mean() > red[:, 0].mean() + 100  # red grows to the right
        assert green[-1].mean() < green[0].mean() - 100  # green fades downwards
    predicted = env.client.post("/v1/predictions", json={"image_ids": [image["id"]]})
    assert predicted.status_code == 200, predicted.text


def test_a_body_without_a_length_is_cut_off_at_the_limit_not_read_whole(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    """A real server answers 413 while a chunked upload 256 times its limit is still arriving."""
    limit = 256 * 1024
    app = create_app(make_settings(tmp_path, fashion_pool, max_multipart_bytes=limit))
    with running(app) as port, socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        with app.state.context.sessions() as session:
            key = create_key(session, "corpus").token.get_secret_value()
        conn.sendall(
            b"POST /v1/images/upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + f"Authorization: Bearer {key}\r\n\r\n".encode()
        )
        part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        chunk, sent = b"10000\r\n" + b"x" * 65536 + b"\r\n", 0
        conn.setblocking(False)
        while sent < 256 * limit and not _readable(conn):
            with contextlib.suppress(BlockingIOError):
                sent += conn.send(chunk)
        conn.setblocking(True)
        answer = _read_response(conn)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"code":"payload_too_large"' in answer.replace(" ", "")
    assert sent < 64 * limit  # the server answered long before the client was done


def _read_response(conn: socket.socket) -> str:
    """Headers and body of one response: the body may come in a later segment than the head."""
    data = b""
    while b"\r\n\r\n" not in data and (received := conn.recv(65536)):
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length and (received := conn.recv(65536)):
        body += received
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def _readable(conn: socket.socket) -> bool:
    return bool(select_module.select([conn], [], [], 0)[0])


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[int]:
    """The app served by uvicorn on a free loopback port, in a thread; yields the port."""
    port = free_loopback_port()
    with served(app, port):
        yield port


def test_reordered_replayed_and_unknown_label_webhooks_never_label_what_they_should_not(
    env: Env,
) -> None:
    """A late creation on a deleted task, a re-serialised replay and an unknown label."""
    sessions = env.client.app.state.context.sessions  # type: ignore[attr-defined]
    headers = {SECRET_HEADER: SECRET}
    url = "/v1/webhooks/label-studio"
    gone, other = env.ids["00027.png"], env.ids["00028.png"]
    deleted = {"action": "TASKS_DELETED", "tasks": [{"id": 900 + gone}], "project": {"id": 1}}
    assert env.client.post(url, json=deleted, headers=headers).status_code == 202
    late = annotation_event("Bag", image_id=gone, annotation_id=77)
    assert env.client.post(url, json=late, headers=headers).status_code == 202
    unknown = annotation_event("Hat", image_id=other, annotation_id=78)
    assert env.client.post(url, json=unknown, headers=headers).status_code == 202
    with sessions() as session:
        before = counts(session)
    # The same delivery re-serialised (other bytes, same event) is stored, and changes nothing.
    again = env.client.post(url, content=json.dumps(unknown, indent=2), headers=headers)
    assert again.status_code == 202 and again.json()["duplicate"] is False
    with sessions() as session:
        after = counts(session)
        assert session.get(Image, gone).label is None
        assert session.get(Image, other).label is None
        rows = {a.studio_annotation_id: a for a in session.scalars(select(Annotation))}
    assert after == {**before, "webhook_events": before["webhook_events"] + 1}
    assert rows[77].deleted  # its task was deleted before the creation arrived
    assert (rows[78].status, rows[78].problem_code) == ("rejected", "unknown_label")


GUIDE_FLAWS = {
    "duplicate-label": ("labels", lambda labels: labels.append(dict(labels[0], hotkey="q"))),
    "duplicate-hotkey": ("labels", lambda labels: labels[1].update(hotkey=labels[0]["hotkey"])),
    "unknown-gold-label": ("gold_tasks", lambda gold: gold[0].update(expected_label="Hat")),
}


@pytest.mark.parametrize("flaw", sorted(GUIDE_FLAWS))
def test_an_invalid_guide_is_refused_and_the_service_does_not_start(
    tmp_path: Path, fashion_pool: ImagePool, flaw: str
) -> None:
    document = yaml.safe_load(example_guide_path("fashion-mnist").read_text())
    section, change = GUIDE_FLAWS[flaw]
    change(document[section])
    path = tmp_path / "guide.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(GuideError) as refused:
        load_guide(path)
    assert refused.value.code == "invalid_guide" and refused.value.problems
    app = create_app(make_settings(tmp_path, fashion_pool, guide_path=path))
    with pytest.raises(GuideError), TestClient(app):
        pass  # the lifespan refuses to serve with the guide


class RacingEmbedder:
    """The real runtime, with a concurrent request storing the same embeddings meanwhile."""

    def __init__(self, env: Env, image_ids: list[int]) -> None:
        self.context = env.client.app.state.context  # type: ignore[attr-defined]
        self.image_ids = image_ids

    @property
    def backbone_id(self) -> str:
        return str(self.context.runtime.backbone_id)

    @property
    def embedding_stores(self) -> Any:
        return self.context.runtime.embedding_stores

    @property
    def chunk_size(self) -> int:
        return int(self.context.runtime.chunk_size)

    def embed(self, paths: Any, *, progress: Any = None) -> EmbeddingResult:
        with self.context.sessions() as other:
            images = [other.get(Image, image_id) for image_id in self.image_ids]
            ensure_embeddings(other, self.context.runtime, images)  # wins the race
        return self.context.runtime.embed(paths, progress=progress)


def test_two_requests_embedding_the_same_images_at_once_both_succeed(env: Env) -> None:
    """Predictions racing on the same new images used to fail one with a duplicate key."""
    rows = np.asarray(PILImage.open(env.folder / "00029.png"))
    ids = []
    for turn in range(2):
        content = encoded(PILImage.fromarray(np.rot90(rows, turn + 1).copy()), "PNG")
        uploaded = env.client.post("/v1/images/upload", files={"file": (f"r{turn}.png", content)})
        ids.append(uploaded.json()["id"])
    context = env.client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        images = [session.get(Image, image_id) for image_id in ids]
        stored = ensure_embeddings(session, RacingEmbedder(env, ids), images)
    assert sorted(stored.vectors) == sorted(ids) and stored.computed == 2
