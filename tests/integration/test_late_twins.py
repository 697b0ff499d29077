"""A cut-off import that a slow Label Studio commits late leaves twin tasks; they are healed.

The late import is simulated for real: after a round was pushed, the same tasks (same content
hashes in their `meta`) are imported again through the gateway, as the killed attempt's
import would land. What the service runs next (a reconciliation, a later push) must leave
exactly one task per image content, the ledger naming the live ones, and every annotation.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labeling.tasks import CONTENT_HASH_KEY, Suggestion, TaskDraft
from service.core.orm import Annotation, RoundItem
from service.studio.tables import ContentTask
from tests.helpers import ImagePool, all_items, register_pool
from tests.integration.flows import project_title, run_round, seed, sync
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 6


@pytest.fixture
def service(service: TestClient, fashion_pool: ImagePool) -> TestClient:
    register_pool(service, str(fashion_pool.folder))
    seed(service, fashion_pool, 2)
    return service


def ledger(client: TestClient) -> dict[str, tuple[int, int | None]]:
    """Content hash -> (image id, task id) as the service's ledger holds them."""
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        rows = session.execute(
            select(ContentTask.content_sha256, ContentTask.image_id, ContentTask.task_id)
        )
        return {digest: (image_id, task_id) for digest, image_id, task_id in rows}


def land_late_import(client: TestClient, project_id: int) -> dict[str, int]:
    """Import every ledgered content again, as a killed attempt's import landing late."""
    context = client.app.state.context  # type: ignore[attr-defined]
    rows = sorted(ledger(client).items())
    drafts = [
        TaskDraft(
            image_id=image_id,
            image_url=context.media.url(image_id),
            suggestion=Suggestion(label="Shirt", score=0.5, model_version="killed-attempt"),
            meta={CONTENT_HASH_KEY: digest},
        )
        for digest, (image_id, _) in rows
    ]
    ids = context.gateway.import_chunk(project_id, drafts)
    return {digest: task_id for (digest, _), task_id in zip(rows, ids, strict=True)}


def assert_one_task_per_content(
    client: TestClient, studio: StudioClient, project_id: int
) -> list[dict[str, Any]]:
    tasks = studio.tasks(project_id)
    per_hash = Counter(t["meta"][CONTENT_HASH_KEY] for t in tasks)
    assert per_hash and set(per_hash.values()) == {1}, per_hash
    live = {t["meta"][CONTENT_HASH_KEY]: t["id"] for t in tasks}
    assert {d: task_id for d, (_, task_id) in ledger(client).items()} == live
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        items = session.scalars(select(RoundItem).where(RoundItem.task_id.is_not(None))).all()
        assert items and {item.task_id for item in items} <= set(live.values())
    return tasks


def test_late_twins_are_healed_by_reconciliation_and_annotations_kept(
    service: TestClient, studio: StudioClient
) -> None:
    run_round(service, K)
    project_id = int(studio.project_by_title(project_title(service))["id"])
    before = ledger(service)
    late = land_late_import(service, project_id)
    assert len(studio.tasks(project_id)) == 2 * len(before)
    (kept_hash, adopt_hash, *_rest) = sorted(before)
    on_original = studio.annotate(int(before[kept_hash][1] or 0), "Shirt")
    on_twin = studio.annotate(late[adopt_hash], "Bag")  # an annotator got the late twin

    report = sync(service)

    assert report["twins_deleted"] == len(before) and report["twins_adopted"] == 1
    tasks = assert_one_task_per_content(service, studio, project_id)
    after = ledger(service)
    assert after[kept_hash] == before[kept_hash]
    assert after[adopt_hash] == (before[adopt_hash][0], late[adopt_hash])
    annotated = {a["id"] for t in tasks for a in t["annotations"]}
    assert annotated == {on_original["id"], on_twin["id"]}  # nothing annotated was deleted
    with service.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        rows = session.scalars(
            select(Annotation).where(Annotation.studio_annotation_id == on_twin["id"])
        ).all()
    assert [(r.image_id, r.task_id, r.label, r.deleted) for r in rows] == [
        (before[adopt_hash][0], late[adopt_hash], "Bag", False)
    ]
    audited = {
        action: [e["after"] for e in all_items(service, "/v1/audit", action=action)]
        for action in ("task.twin_deleted", "task.twin_adopted")
    }
    assert len(audited["task.twin_deleted"]) == len(before) - 1
    assert audited["task.twin_adopted"] == [
        {"task_id": late[adopt_hash], "deleted": [before[adopt_hash][1]], "kept": []}
    ]
    again = sync(service)  # healing is idempotent
    assert again["twins_deleted"] == again["twins_adopted"] == 0
    assert_one_task_per_content(service, studio, project_id)


def test_a_late_twin_landing_after_a_push_is_healed_by_the_next_push(
    service: TestClient, studio: StudioClient
) -> None:
    run_round(service, K)
    project_id = int(studio.project_by_title(project_title(service))["id"])
    late = land_late_import(service, project_id)
    run_round(service, K)  # its push heals what the killed attempt left
    tasks = assert_one_task_per_content(service, studio, project_id)
    assert not {t["id"] for t in tasks} & set(late.values())
    assert len(tasks) == len(ledger(service))
