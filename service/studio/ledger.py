"""The task ledger: at most one Label Studio task per image content and project.

Each image's sha256 is the key, kept in a `ContentTask` row (UNIQUE per project) and in its
task's `meta` (`CONTENT_HASH_KEY`). A push first matches the round's images to the rows
that already hold a live task (reused, never imported again), then sends the rest. A row
without a task id was part of an import that was cut off: `recover` looks for its task
among the tasks created after the last task id the ledger knows, a Data Manager filter on
the id that reads only that tail of the project.

Rows and round items are written with bulk statements (executemany), not one object per
row: a round of 20,000 images costs tens of milliseconds here, not seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from labeling.gateway import LabelStudioGateway
from labeling.tasks import CONTENT_HASH_KEY, StudioTask
from service.core.orm import DeletedTask, Image, RoundItem
from service.studio.intake import chunked
from service.studio.tables import ContentTask


@dataclass
class LedgerRow:
    """One `ContentTask` row as a push sees it; `task_id` is None until its task exists."""

    id: int
    image_id: int
    content_sha256: str
    task_id: int | None


@dataclass
class PushPlan:
    """How a round's items map to ledger rows.

    `to_send`: rows whose task must be imported, in the rank order of their first item;
    `items`: the round's items per content hash (two images with equal bytes share a task).
    """

    to_send: list[LedgerRow] = field(default_factory=list)
    items: dict[str, list[RoundItem]] = field(default_factory=dict)
    reused: int = 0  # distinct contents given a task that already existed


def plan_push(
    session: Session, project_id: int, round_id: int, items: Sequence[RoundItem]
) -> PushPlan:
    """Match `items` (rank order) to ledger rows, adding rows for new content (no commit).

    An item whose content already has a live task in the project gets that task's id. A row
    whose task was deleted or withdrawn starts again without a task, for this round.
    """
    hashes = image_hashes(session, [item.image_id for item in items])
    rows = _rows_by_hash(session, project_id, set(hashes.values()))
    dead = _deleted(session, [row.task_id for row, _ in rows.values() if row.task_id is not None])
    plan = PushPlan()
    order: list[str] = []
    reused: list[LedgerRow] = []
    again: list[dict[str, object]] = []
    for item in items:
        digest = hashes[item.image_id]
        plan.items.setdefault(digest, []).append(item)
        if len(plan.items[digest]) > 1:
            continue  # a copy of an image met earlier in this round: it shares that task
        order.append(digest)
        found = rows.get(digest)
        if found is None:
            continue
        row, withdrawn = found
        if row.task_id is not None and row.task_id not in dead and not withdrawn:
            reused.append(row)
        elif row.task_id is not None:  # deleted or withdrawn: this round sends it again
            row.task_id, row.image_id = None, item.image_id
            again.append(
                {"id": row.id, "task_id": None, "withdrawn_at": None}
                | {"image_id": item.image_id, "round_id": round_id}
            )
    if again:
        session.execute(update(ContentTask), again)
    new = [plan.items[d][0] for d in order if d not in rows]
    added = _insert_rows(session, project_id, round_id, new, hashes)
    every = {digest: row for digest, (row, _) in rows.items()} | added
    plan.to_send = [every[d] for d in order if every[d].task_id is None]
    plan.reused = len(reused)
    assign_task_ids(session, plan, reused)
    return plan


def assign_task_ids(session: Session, plan: PushPlan, rows: Sequence[LedgerRow]) -> None:
    """Store the task ids of these rows, on the rows and on their round items (no commit)."""
    done = [row for row in rows if row.task_id is not None]
    if not done:
        return
    session.execute(update(ContentTask), [{"id": r.id, "task_id": r.task_id} for r in done])
    # Label Studio on SQLite hands a deleted task's id to a new task: that id lives again.
    for batch in chunked(sorted({int(r.task_id) for r in done if r.task_id is not None})):
        session.execute(delete(DeletedTask).where(DeletedTask.task_id.in_(batch)))
    items = [(item, row.task_id) for row in done for item in plan.items[row.content_sha256]]
    session.execute(update(RoundItem), [{"id": i.id, "task_id": t} for i, t in items])
    for item, task_id in items:  # the loaded items say so too, without another write
        set_committed_value(item, "task_id", task_id)


def recover(session: Session, gateway: LabelStudioGateway, project_id: int) -> dict[str, int]:
    """Find the tasks of rows left without a task id by a cut-off import (no commit).

    Reads the tasks created after the highest task id the ledger holds (Label Studio gives
    ids in increasing order) and matches them by the content hash in their `meta`; stores
    and returns what it found (content hash -> task id). Rows not found were never created.
    """
    pending = set(
        session.scalars(
            select(ContentTask.content_sha256).where(
                ContentTask.project_id == project_id, ContentTask.task_id.is_(None)
            )
        )
    )
    if not pending:
        return {}
    found: dict[str, int] = {}
    for task in gateway.tasks_after(project_id, highest_task_id(session, project_id)):
        digest = content_hash(task)
        if digest in pending and digest not in found:
            found[digest] = task.task_id
    for digest, task_id in found.items():
        session.execute(
            update(ContentTask)
            .where(ContentTask.project_id == project_id, ContentTask.content_sha256 == digest)
            .values(task_id=task_id)
        )
    return found


def highest_task_id(session: Session, project_id: int) -> int:
    """The highest live task id the ledger holds in the project (0 when none).

    Deleted ids may be handed out again: they do not count.
    """
    after = session.scalar(
        select(func.max(ContentTask.task_id)).where(
            ContentTask.project_id == project_id,
            ContentTask.task_id.not_in(select(DeletedTask.task_id)),
        )
    )
    return int(after or 0)


def content_hash(task: StudioTask) -> str | None:
    """The image content hash a task carries in its `meta`, or None for a task without one."""
    value = task.meta.get(CONTENT_HASH_KEY)
    return value if isinstance(value, str) else None


def image_hashes(session: Session, image_ids: Sequence[int]) -> dict[int, str]:
    """sha256 of each image's bytes, by image id."""
    hashes: dict[int, str] = {}
    for batch in chunked(sorted(set(image_ids))):
        rows = session.execute(select(Image.id, Image.sha256).where(Image.id.in_(batch)))
        hashes.update((image_id, digest) for image_id, digest in rows)
    missing = set(image_ids) - hashes.keys()
    if missing:
        raise ValueError(f"expected registered images, got unknown ids {sorted(missing)[:10]}")
    return hashes


def _rows_by_hash(
    session: Session, project_id: int, hashes: set[str]
) -> dict[str, tuple[LedgerRow, bool]]:
    """The project's rows for these content hashes, each with whether it was withdrawn."""
    columns = (
        ContentTask.id,
        ContentTask.image_id,
        ContentTask.content_sha256,
        ContentTask.task_id,
        ContentTask.withdrawn_at,
    )
    rows: dict[str, tuple[LedgerRow, bool]] = {}
    for batch in chunked(sorted(hashes)):
        query = select(*columns).where(
            ContentTask.project_id == project_id, ContentTask.content_sha256.in_(batch)
        )
        for row_id, image_id, digest, task_id, withdrawn_at in session.execute(query):
            rows[digest] = (LedgerRow(row_id, image_id, digest, task_id), withdrawn_at is not None)
    return rows


def _insert_rows(
    session: Session,
    project_id: int,
    round_id: int,
    items: Sequence[RoundItem],
    hashes: dict[int, str],
) -> dict[str, LedgerRow]:
    """New rows without a task id, one per item (distinct contents), by content hash."""
    if not items:
        return {}
    values = [
        {
            "project_id": project_id,
            "image_id": item.image_id,
            "content_sha256": hashes[item.image_id],
            "round_id": round_id,
        }
        for item in items
    ]
    session.execute(insert(ContentTask), values)
    added = _rows_by_hash(session, project_id, {value["content_sha256"] for value in values})
    return {digest: row for digest, (row, _) in added.items()}


def _deleted(session: Session, task_ids: Sequence[int]) -> set[int]:
    gone: set[int] = set()
    for batch in chunked(sorted(set(task_ids))):
        query = select(DeletedTask.task_id).where(DeletedTask.task_id.in_(batch))
        gone.update(session.scalars(query))
    return gone
