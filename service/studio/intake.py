"""Storing annotations: one idempotent upsert shared by webhooks, reconciliation and full reads.

Rows are keyed on Label Studio's annotation id and ordered by its `updated_at`: applying
the same state twice changes nothing, and an older state never overwrites a newer one.
Every query takes ids in chunks of at most `CHUNK` bound parameters; rows are loaded in
bulk, never one query per annotation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from guides import Guide
from labeling.tasks import StudioAnnotation, StudioPrediction, StudioTask
from service.audit import record
from service.core.db import lock_for_writing
from service.core.orm import Annotation, DeletedTask, Image, RoundItem, utcnow

CHUNK = 500  # bound parameters per IN list: far below SQLite's and PostgreSQL's limits
T = TypeVar("T")


def chunked(values: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """`values` in lists of at most `size` items, in order."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    batch: list[T] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class AnnotationProblem:
    annotation_id: int
    task_id: int
    code: str
    message: str


@dataclass
class IntakeReport:
    """What one intake pass did; `stale` counts states older than the stored one."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    cancelled: int = 0
    deleted: int = 0
    labeled_images: int = 0  # images whose label this pass re-resolved and set
    problems: list[AnnotationProblem] = field(default_factory=list)


def judge(annotation: StudioAnnotation, guide: Guide) -> tuple[str, str | None, str | None]:
    """(status, label, problem) of one annotation against the guide; problem is 'code: text'."""
    if annotation.was_cancelled:
        return "cancelled", None, None
    if annotation.image_id is None:
        return "rejected", None, "unknown_task: the task names no image of this service"
    if len(annotation.choices) != 1:
        return "rejected", None, f"choice_count: expected one choice, got {annotation.choices}"
    label = annotation.choices[0]
    if not guide.has_label(label):
        return "rejected", None, f"unknown_label: {label!r} is not a label of the guide"
    return "accepted", label, None


def store_annotations(
    session: Session,
    annotations: Sequence[StudioAnnotation],
    *,
    guide: Guide,
    shown: Mapping[int, StudioPrediction],
    report: IntakeReport,
    project_id: int | None,
) -> set[int]:
    """Upsert annotations (flush only); returns the image ids whose label must be re-resolved.

    `shown` maps prediction ids to the predictions, to record what each annotator saw.
    Each new row is audited `annotation.received`, each changed one `annotation.updated`.
    A first look without locks skips what is stale or unchanged; the rest is read again
    under the write lock (SQLite) or row locks (PostgreSQL), and new rows are inserted with
    ON CONFLICT DO NOTHING, so two deliveries of one annotation at once store it once.
    """
    newest = _newest_per_id(annotations)
    known_images = _known_images(session, {a.image_id for a in newest.values() if a.image_id})
    gone = _deleted_tasks(session, {a.task_id for a in newest.values()})

    def values_of(annotation: StudioAnnotation, row: Annotation | None) -> dict[str, Any]:
        values = _values(annotation, guide, shown, known_images)
        values["deleted"] = annotation.task_id in gone  # a late event of a deleted task
        values["project_id"] = (
            project_id if project_id is not None else getattr(row, "project_id", None)
        )
        return values

    first = rows_by_studio_id(session, list(newest))
    pending = [
        annotation
        for annotation in newest.values()
        if _verdict(first.get(annotation.annotation_id), annotation, values_of, report)
    ]
    if not pending:
        return set()
    lock_for_writing(session)
    rows = rows_by_studio_id(session, [a.annotation_id for a in pending], lock=True)
    fresh = {a.annotation_id: values_of(a, None) for a in pending if a.annotation_id not in rows}
    inserted = _insert_new(session, fresh, guide)
    rows |= rows_by_studio_id(session, [i for i in fresh if i not in inserted], lock=True)
    touched: set[int | None] = set()
    for annotation in pending:
        row = inserted.get(annotation.annotation_id)
        if row is not None:
            _audit(session, "annotation.received", row, None)
            report.new += 1
        else:
            row = rows[annotation.annotation_id]
            if not _verdict(row, annotation, values_of, report):
                continue
            touched.add(row.image_id)
            _update(session, row, values_of(annotation, row))
            report.updated += 1
        touched.add(row.image_id)
        _note(report, annotation, row)
    session.flush()
    return {image_id for image_id in touched if image_id is not None}


def _verdict(
    row: Annotation | None,
    annotation: StudioAnnotation,
    values_of: Callable[[StudioAnnotation, Annotation | None], dict[str, Any]],
    report: IntakeReport,
) -> bool:
    """True when `annotation` must be written over `row`; counts it stale or unchanged if not."""
    if row is None:
        return True
    if _is_stale(row, annotation):
        report.stale += 1
        return False
    if _same(row, values_of(annotation, row)):
        report.unchanged += 1
        return False
    return True


def _insert_new(
    session: Session, fresh: Mapping[int, dict[str, Any]], guide: Guide
) -> dict[int, Annotation]:
    """Insert these rows by annotation id, skipping any another writer inserted first.

    Returns the rows this call inserted, by annotation id.
    """
    if not fresh:
        return {}
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    now = utcnow()
    stamp = {"guide_version": str(guide.version), "guide_fingerprint": guide.fingerprint()}
    rows = [
        {
            "studio_annotation_id": annotation_id,
            "deleted_at": now if values["deleted"] else None,
            "synced_at": now,
            **values,
            **stamp,
        }
        for annotation_id, values in sorted(fresh.items())
    ]
    inserted: dict[int, Annotation] = {}
    for batch in chunked(rows, max(1, CHUNK // len(rows[0]))):
        statement = (
            insert(Annotation)
            .values(batch)
            .on_conflict_do_nothing(index_elements=[Annotation.studio_annotation_id])
            .returning(Annotation)
        )
        inserted.update((row.studio_annotation_id, row) for row in session.scalars(statement))
    return inserted


def _update(session: Session, row: Annotation, values: dict[str, Any]) -> None:
    before = _state(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.synced_at = utcnow()
    _audit(session, "annotation.updated", row, before)


def delete_annotations(
    session: Session, annotation_ids: Sequence[int], report: IntakeReport
) -> set[int]:
    """Flag these annotations deleted; returns the image ids to re-resolve."""
    rows = rows_by_studio_id(session, annotation_ids)
    return _flag_deleted(session, rows.values(), report)


def delete_tasks(session: Session, task_ids: Sequence[int], report: IntakeReport) -> set[int]:
    """Flag every annotation of these tasks deleted and remember the tasks as gone.

    A task the service withdrew from the queue keeps its annotations: one can only have
    been made in the moment before the withdrawal took effect, by a person who meant it.
    """
    ids = sorted(set(task_ids))
    touched: set[int] = set()
    for batch in chunked(ids):
        withdrawn = (
            select(RoundItem.task_id)
            .where(RoundItem.task_id.in_(batch), RoundItem.withdrawn_at.is_not(None))
            .union(
                select(DeletedTask.task_id).where(
                    DeletedTask.task_id.in_(batch), DeletedTask.withdrawn
                )
            )
        )
        rows = session.scalars(
            select(Annotation).where(
                Annotation.task_id.in_(batch), Annotation.task_id.not_in(withdrawn)
            )
        )
        touched |= _flag_deleted(session, rows, report)
        gone = set(
            session.scalars(select(DeletedTask.task_id).where(DeletedTask.task_id.in_(batch)))
        )
        session.add_all(DeletedTask(task_id=task_id) for task_id in batch if task_id not in gone)
    session.flush()
    return touched


def delete_missing(session: Session, tasks: Sequence[StudioTask], report: IntakeReport) -> set[int]:
    """Flag stored annotations that these tasks (as just read) no longer hold.

    An annotation created after the task was read (a webhook racing the read) is kept.
    """
    by_task = {task.task_id: task for task in tasks}
    current = {task.task_id: {a.annotation_id for a in task.annotations} for task in tasks}
    missing: list[Annotation] = []
    for batch in chunked(sorted(by_task)):
        rows = session.scalars(
            select(Annotation).where(Annotation.task_id.in_(batch), Annotation.deleted.is_(False))
        )
        for row in rows:
            read_at = as_utc(by_task[row.task_id].updated_at)
            created = as_utc(row.studio_created_at)
            if row.studio_annotation_id in current[row.task_id]:
                continue
            if read_at is not None and created is not None and created > read_at:
                continue
            missing.append(row)
    return _flag_deleted(session, missing, report)


def rows_by_studio_id(
    session: Session, annotation_ids: Sequence[int], *, lock: bool = False
) -> dict[int, Annotation]:
    """Stored rows by Label Studio annotation id, loaded in chunks.

    `lock` reads them afresh and locks them (`FOR UPDATE` on PostgreSQL, in id order).
    """
    found: dict[int, Annotation] = {}
    for batch in chunked(sorted(set(annotation_ids))):
        query = select(Annotation).where(Annotation.studio_annotation_id.in_(batch))
        if lock:
            query = (
                query.order_by(Annotation.studio_annotation_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        found.update((row.studio_annotation_id, row) for row in session.scalars(query))
    return found


def _flag_deleted(session: Session, rows: Iterable[Annotation], report: IntakeReport) -> set[int]:
    touched: set[int] = set()
    now = utcnow()
    for row in rows:
        if row.deleted:
            continue
        before = _state(row)
        row.deleted, row.deleted_at = True, now
        _audit(session, "annotation.deleted", row, before)
        report.deleted += 1
        if row.image_id is not None:
            touched.add(row.image_id)
    return touched


def _state(row: Annotation) -> dict[str, Any]:
    """What the audit trail keeps of an annotation: who gave which answer to what, and what
    they were shown (the raw Label Studio JSON is never copied)."""
    return {
        "task_id": row.task_id,
        "image_id": row.image_id,
        "annotator": row.annotator,
        "status": row.status,
        "label": row.label,
        "problem_code": row.problem_code,
        "shown": {
            "prediction_id": row.shown_prediction_id,
            "model_version": row.shown_model_version,
            "label": row.shown_label,
        },
        "deleted": row.deleted,
        "updated_at": row.studio_updated_at,
    }


def _audit(session: Session, action: str, row: Annotation, before: dict[str, Any] | None) -> None:
    actor = f"studio-user:{row.annotator}" if row.annotator is not None else "label-studio"
    subject = ("annotation", row.studio_annotation_id)
    record(session, action, actor=actor, subject=subject, before=before, after=_state(row))


def _newest_per_id(annotations: Sequence[StudioAnnotation]) -> dict[int, StudioAnnotation]:
    newest: dict[int, StudioAnnotation] = {}
    for annotation in annotations:
        held = newest.get(annotation.annotation_id)
        if held is None or _order(annotation.updated_at) >= _order(held.updated_at):
            newest[annotation.annotation_id] = annotation
    return newest


def _is_stale(row: Annotation, annotation: StudioAnnotation) -> bool:
    """True when the stored state is newer than `annotation` (or deleted and not older)."""
    stored, incoming = _order(row.studio_updated_at), _order(annotation.updated_at)
    return incoming < stored or (row.deleted and incoming <= stored)


def _values(
    annotation: StudioAnnotation,
    guide: Guide,
    shown: Mapping[int, StudioPrediction],
    known_images: set[int],
) -> dict[str, Any]:
    status, label, problem = judge(annotation, guide)
    code = problem.partition(": ")[0] if problem else None
    prediction = shown.get(annotation.parent_prediction) if annotation.parent_prediction else None
    return {
        "task_id": annotation.task_id,
        "image_id": annotation.image_id if annotation.image_id in known_images else None,
        "status": status,
        "label": label,
        "problem_code": code,
        "problem": problem,
        "annotator": annotation.completed_by,
        "lead_time": annotation.lead_time,
        "shown_prediction_id": annotation.parent_prediction,
        "shown_model_version": prediction.model_version if prediction else None,
        "shown_label": prediction.label if prediction else None,
        "studio_created_at": annotation.created_at,
        "studio_updated_at": annotation.updated_at,
        "deleted": False,
    }


def _same(row: Annotation, values: dict[str, Any]) -> bool:
    for name, value in values.items():
        stored = getattr(row, name)
        if isinstance(value, datetime) or isinstance(stored, datetime):
            stored, value = as_utc(stored), as_utc(value)
        if stored != value:
            return False
    return True


def _note(report: IntakeReport, annotation: StudioAnnotation, row: Annotation) -> None:
    if row.status == "cancelled":
        report.cancelled += 1
    if row.problem:
        code, _, message = row.problem.partition(": ")
        report.problems.append(
            AnnotationProblem(annotation.annotation_id, annotation.task_id, code, message)
        )


def _deleted_tasks(session: Session, task_ids: set[int]) -> set[int]:
    """The tasks among `task_ids` that were deleted, other than by the service's withdrawal."""
    gone: set[int] = set()
    for batch in chunked(sorted(task_ids)):
        query = select(DeletedTask.task_id).where(
            DeletedTask.task_id.in_(batch), DeletedTask.withdrawn.is_(False)
        )
        gone.update(session.scalars(query))
    return gone


def _known_images(session: Session, image_ids: set[int | None]) -> set[int]:
    known: set[int] = set()
    for batch in chunked(sorted(i for i in image_ids if i is not None)):
        known.update(session.scalars(select(Image.id).where(Image.id.in_(batch))))
    return known


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: read them as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _order(value: datetime | None) -> datetime:
    return as_utc(value) or _EPOCH
