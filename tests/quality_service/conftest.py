"""A service with gold images from the guide, two annotators' answers stored, a receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from guides import Guide, example_guide_path, load_guide
from models.datasets import load_fashion_mnist, write_pngs
from service.core.orm import Annotation, Image, utcnow
from service.core.settings import QualitySettings
from tests.helpers import ImagePool, api_client, make_settings


@pytest.fixture(scope="session")
def guide() -> Guide:
    return load_guide(example_guide_path("fashion-mnist"))


@pytest.fixture(scope="session")
def gold_dir(tmp_path_factory: pytest.TempPathFactory, guide: Guide) -> Path:
    """The guide's gold images (`test/NNNNN.png`: Fashion-MNIST test images by index)."""
    root = tmp_path_factory.mktemp("gold")
    images, _ = load_fashion_mnist("test")
    indices = [int(Path(task.image).stem) for task in guide.gold_tasks]
    names = [Path(task.image).name for task in guide.gold_tasks]
    write_pngs(images[indices], root / "test", names=names)
    return root


class Receiver:
    """A local Slack-compatible webhook: keeps every JSON body it is sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                return

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def client(
    tmp_path: Path, fashion_pool: ImagePool, gold_dir: Path, receiver: Receiver
) -> Iterator[TestClient]:
    quality = QualitySettings(gold_dir=gold_dir, notify_url=receiver.url)
    settings = make_settings(
        tmp_path, fashion_pool, allowed_roots=[fashion_pool.root, gold_dir], quality=quality
    )
    with api_client(settings) as test_client:
        yield test_client


@dataclass(frozen=True)
class Answer:
    task_id: int
    image_id: int
    annotator: int
    label: str
    shown: str | None = None


def add_images(client: TestClient, count: int) -> list[int]:
    """`count` ordinary image rows (their files are never opened here)."""
    context = client.app.state.context  # type: ignore[attr-defined]
    rows = [
        {
            "path": f"/pool/{i:06d}.png",
            "sha256": f"{i:064x}",
            "width": 28,
            "height": 28,
            "source": "folder",
            "registered_at": utcnow(),
        }
        for i in range(count)
    ]
    with context.sessions() as session:
        ids = [
            session.execute(insert(Image).returning(Image.id), [row]).scalar_one() for row in rows
        ]
        session.commit()
    return ids


def store_answers(
    client: TestClient, guide: Guide, answers: list[Answer], *, start: int = 1
) -> None:
    """Annotation rows as intake stores them (accepted, under the guide in force)."""
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        for offset, answer in enumerate(answers):
            session.add(
                Annotation(
                    studio_annotation_id=start + offset,
                    task_id=answer.task_id,
                    image_id=answer.image_id,
                    label=answer.label,
                    status="accepted",
                    annotator=answer.annotator,
                    shown_label=answer.shown,
                    shown_model_version="v1" if answer.shown else None,
                    guide_version=str(guide.version),
                    guide_fingerprint=guide.fingerprint(),
                    studio_updated_at=utcnow(),
                )
            )
        session.commit()
