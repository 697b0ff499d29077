"""A service with real registered images, the guide's gold images and a WIP limit; a flow
driver that pushes rounds as the push leaves them and sends answers through the webhook.

Label Studio is unreachable here: the push itself (which needs it) is covered by the
integration tests, so `Flow.push` writes what `studio.push.push_round` writes (the round as
pushed, each item's task id, the `task.pushed` audit entry). Everything else goes through the
service: registration, seed labels, gold registration, the webhook intake and label
resolution, and agreement reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guides import Guide, example_guide_path, load_guide
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, write_pngs
from service.audit import record
from service.context import ServiceContext
from service.core.orm import ModelVersion, Round, RoundItem
from service.core.settings import LabelStudioSettings, QualitySettings
from service.quality.gold import gold_answers
from service.studio.webhooks import SECRET_HEADER, WEBHOOK_PATH
from tests.helpers import ImagePool, all_items, api_client, make_settings, register_pool

SECRET = "a-webhook-secret-for-the-board"
WIP_LIMIT = 2
PROJECT = 1


@pytest.fixture(scope="session")
def gold_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guide's gold images (`test/NNNNN.png`: Fashion-MNIST test images by index)."""
    guide = load_guide(example_guide_path("fashion-mnist"))
    root = tmp_path_factory.mktemp("board-gold")
    images, _ = load_fashion_mnist("test")
    indices = [int(Path(task.image).stem) for task in guide.gold_tasks]
    names = [Path(task.image).name for task in guide.gold_tasks]
    write_pngs(images[indices], root / "test", names=names)
    return root


def limited_guide(path: Path, limit: int = WIP_LIMIT) -> Path:
    """The bundled guide with a WIP limit per annotator."""
    text = example_guide_path("fashion-mnist").read_text()
    path.write_text(text + f"\nflow:\n  wip_per_annotator: {limit}\n")
    return path


class Flow:
    """Drives the flow through the service: images, seeds, pushes, answers, reports."""

    def __init__(self, client: TestClient, pool: ImagePool) -> None:
        self.client = client
        self.ctx: ServiceContext = client.app.state.context  # type: ignore[attr-defined]
        self.pool = pool
        self.next_task = 1000
        self.next_annotation = 1

    @property
    def guide(self) -> Guide:
        return self.ctx.guide

    def images(self) -> dict[str, list[int]]:
        """Registered image ids: the pool's (by file order) and the gold ones."""
        items = all_items(self.client, "/v1/images", limit=1000)
        gold_root = str(self.ctx.settings.quality.gold_dir)
        pool = sorted((i["path"], i["id"]) for i in items if not i["path"].startswith(gold_root))
        gold = sorted(i["id"] for i in items if i["path"].startswith(gold_root))
        return {"pool": [image_id for _, image_id in pool], "gold": gold}

    def true_label(self, image_id: int) -> str:
        """The Fashion-MNIST label of a pool image, the guide's answer of a gold one."""
        with self.ctx.sessions() as session:
            gold = gold_answers(session)
        if image_id in gold:
            return gold[image_id]
        index = self.images()["pool"].index(image_id)
        return FASHION_MNIST_CLASSES[self.pool.labels[index]]

    def seed(self, image_ids: list[int]) -> None:
        body = {"labels": [{"image_id": i, "label": self.true_label(i)} for i in image_ids]}
        assert self.client.post("/v1/labels", json=body).status_code == 200

    def push(self, image_ids: list[int]) -> tuple[int, dict[int, int]]:
        """A round of these images pushed in this order; returns its id and task by image."""
        with self.ctx.sessions() as session:
            if session.get(ModelVersion, "h-board") is None:
                session.add(
                    ModelVersion(
                        id="h-board",
                        backbone_id="test",
                        checkpoint_path="unused",
                        n_train=10,
                        class_names=self.guide.label_names,
                        metrics={},
                        guide_fingerprint=self.guide.fingerprint(),
                        labels_digest="0" * 64,
                    )
                )
            round_ = Round(
                status="pushed",
                strategy="entropy",
                k=len(image_ids),
                model_version="h-board",
                pool_size=len(image_ids),
                project_id=PROJECT,
            )
            session.add(round_)
            session.flush()
            tasks = {}
            for rank, image_id in enumerate(image_ids, start=1):
                tasks[image_id] = self.next_task
                session.add(
                    RoundItem(
                        round_id=round_.id,
                        image_id=image_id,
                        rank=rank,
                        score=1.0 / rank,
                        predicted_label=self.guide.label_names[0],
                        predicted_probability=0.5,
                        model_version="h-board",
                        task_id=self.next_task,
                    )
                )
                self.next_task += 1
            record(
                session, "task.pushed", subject=("round", round_.id), after={"tasks": len(tasks)}
            )
            session.commit()
            return round_.id, tasks

    def answer(
        self, task_id: int, image_id: int, label: str, *, annotator: int, at: datetime
    ) -> None:
        """One annotation as Label Studio's webhook delivers it, made at `at`."""
        stamp = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        body: dict[str, Any] = {
            "action": "ANNOTATION_CREATED",
            "annotation": {
                "id": self.next_annotation,
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "image",
                        "type": "choices",
                        "value": {"choices": [label]},
                    }
                ],
                "was_cancelled": False,
                "created_at": stamp,
                "updated_at": stamp,
                "lead_time": 3.0,
                "task": task_id,
                "project": PROJECT,
                "completed_by": annotator,
            },
            "task": {"id": task_id, "data": {"image": "http://x/1.png", "image_id": image_id}},
            "project": {"id": PROJECT, "title": "activelabel"},
        }
        self.next_annotation += 1
        response = self.client.post(
            WEBHOOK_PATH, content=json.dumps(body).encode(), headers={SECRET_HEADER: SECRET}
        )
        assert response.status_code == 202, response.text


def service_settings(tmp_path: Path, pool: ImagePool, gold_dir: Path, **overrides: Any) -> Any:
    studio = LabelStudioSettings(
        url="http://127.0.0.1:9",
        api_key=SecretStr("0" * 40),
        timeout_s=2,
        webhook_secret=SecretStr(SECRET),
        reconcile_every_s=0,
    )
    values: dict[str, Any] = {
        "label_studio": studio,
        "allowed_roots": [pool.root, gold_dir],
        "guide_path": limited_guide(tmp_path / "guide.yaml"),
        "quality": QualitySettings(gold_dir=gold_dir, drift_after_ingestion=False),
    }
    values.update(overrides)
    return make_settings(tmp_path, pool, **values)


@pytest.fixture
def flow(
    tmp_path: Path, fashion_pool: ImagePool, gold_dir: Path, database_url: str
) -> Iterator[Flow]:
    """The flow on SQLite, then on a real PostgreSQL."""
    settings = service_settings(tmp_path, fashion_pool, gold_dir, database_url=database_url)
    with api_client(settings) as client:
        register_pool(client, str(fashion_pool.folder))
        assert client.post("/v1/gold/register").json()["registered"] == 10
        yield Flow(client, fashion_pool)
