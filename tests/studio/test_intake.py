"""Storing annotations: idempotent, ordered by `updated_at`, deletions kept, labels re-resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from labeling.tasks import StudioAnnotation, StudioPrediction
from service.core.orm import Annotation, Image
from service.studio.intake import (
    IntakeReport,
    chunked,
    delete_annotations,
    delete_tasks,
    store_annotations,
)
from service.studio.resolve import resolve_labels
from tests.studio.conftest import add_images

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SHOWN = {77: StudioPrediction(77, "h-abc123", "Coat")}


def annotation(
    annotation_id: int,
    image_id: int | None,
    label: str | None,
    *,
    at: datetime = T0,
    task_id: int | None = None,
    cancelled: bool = False,
    annotator: int = 5,
    parent: int | None = None,
) -> StudioAnnotation:
    return StudioAnnotation(
        annotation_id=annotation_id,
        task_id=task_id if task_id is not None else 1000 + (image_id or 0),
        image_id=image_id,
        choices=[label] if label else [],
        completed_by=annotator,
        was_cancelled=cancelled,
        lead_time=3.5,
        created_at=T0,
        updated_at=at,
        parent_prediction=parent,
    )


def store(session: Session, guide: Guide, *items: StudioAnnotation) -> IntakeReport:
    report = IntakeReport()
    touched = store_annotations(
        session, items, guide=guide, shown=SHOWN, report=report, project_id=3
    )
    report.labeled_images = resolve_labels(session, touched)
    session.commit()
    return report


def test_an_annotation_records_annotator_shown_prediction_guide_and_times(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        (image_id,) = add_images(session, 1)
        report = store(session, guide, annotation(1, image_id, "Bag", parent=77))
        row = session.scalars(select(Annotation)).one()
        assert (report.new, report.labeled_images) == (1, 1)
        assert (row.annotator, row.lead_time, row.status, row.label) == (5, 3.5, "accepted", "Bag")
        assert (row.shown_prediction_id, row.shown_model_version, row.shown_label) == (
            77,
            "h-abc123",
            "Coat",
        )
        assert (row.guide_version, row.guide_fingerprint) == (
            str(guide.version),
            guide.fingerprint(),
        )
        assert row.project_id == 3 and not row.deleted
        assert row.studio_updated_at.replace(tzinfo=UTC) == T0
        assert session.get(Image, image_id).label == "Bag"


def test_replays_change_nothing_and_older_states_never_overwrite_newer_ones(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        (image_id,) = add_images(session, 1)
        first = annotation(1, image_id, "Bag")
        corrected = annotation(1, image_id, "Coat", at=T0 + timedelta(minutes=1))
        store(session, guide, first)
        assert store(session, guide, first).unchanged == 1
        assert store(session, guide, corrected).updated == 1
        late = store(session, guide, first)  # the older event arrives after the newer one
        assert (late.stale, late.updated) == (1, 0)
        assert session.scalars(select(Annotation.label)).one() == "Coat"
        assert session.get(Image, image_id).label == "Coat"


def test_unknown_labels_are_kept_as_rejected_and_skips_as_cancelled(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        a, b = add_images(session, 2)
        report = store(
            session, guide, annotation(1, a, "Hat"), annotation(2, b, None, cancelled=True)
        )
        rows = {r.studio_annotation_id: r for r in session.scalars(select(Annotation))}
        assert (rows[1].status, rows[1].problem_code, rows[1].label) == (
            "rejected",
            "unknown_label",
            None,
        )
        assert rows[2].status == "cancelled"
        assert [p.code for p in report.problems] == ["unknown_label"]
        assert report.cancelled == 1 and report.labeled_images == 0


def test_deleting_an_annotation_flags_it_and_re_resolves_the_image_label(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        (image_id,) = add_images(session, 1)
        store(session, guide, annotation(1, image_id, "Bag"), annotation(2, image_id, "Bag"))
        store(session, guide, annotation(3, image_id, "Coat", at=T0 + timedelta(seconds=1)))
        assert session.get(Image, image_id).label == "Bag"  # two votes against one

        report = IntakeReport()
        resolve_labels(session, delete_annotations(session, [1, 2], report))
        session.commit()
        assert report.deleted == 2 and session.get(Image, image_id).label == "Coat"
        assert store(session, guide, annotation(1, image_id, "Bag")).stale == 1  # no revival

        report = IntakeReport()
        resolve_labels(session, delete_tasks(session, [1000 + image_id], report))
        session.commit()
        assert report.deleted == 1 and session.get(Image, image_id).label is None
        assert all(row.deleted for row in session.scalars(select(Annotation)))


@pytest.mark.slow
def test_more_ids_than_any_database_binds_at_once_are_read_in_chunks(
    sqlite_sessions: sessionmaker[Session], guide: Guide
) -> None:
    """SQLite binds at most 32,766 parameters: 40,001 ids must still work."""
    count = 40_001
    with sqlite_sessions() as session:
        image_ids = add_images(session, count)
        items = [annotation(i, image_id, "Hat") for i, image_id in enumerate(image_ids, 1)]
        stored = {
            "guide_version": str(guide.version),
            "guide_fingerprint": guide.fingerprint(),
            "status": "rejected",
            "problem_code": "unknown_label",
            "synced_at": T0,
            "project_id": 3,
        }
        rows = [
            {
                **stored,
                "studio_annotation_id": a.annotation_id,
                "task_id": a.task_id,
                "image_id": a.image_id,
                "problem": f"unknown_label: {'Hat'!r} is not a label of the guide",
                "annotator": a.completed_by,
                "lead_time": a.lead_time,
                "studio_created_at": a.created_at,
                "studio_updated_at": a.updated_at,
                "deleted": False,
            }
            for a in items
        ]
        session.execute(insert(Annotation), rows)
        session.commit()
        report = store(session, guide, *items)  # every id looked up, every image checked
        assert (report.unchanged, report.new, report.updated) == (count, 0, 0)
        assert resolve_labels(session, image_ids) == 0


def test_chunks_keep_order_and_refuse_a_size_below_one() -> None:
    assert list(chunked(range(5), 2)) == [[0, 1], [2, 3], [4]]
    try:
        list(chunked([1], 0))
    except ValueError as err:
        assert "size" in str(err)
    else:
        raise AssertionError("size 0 was accepted")
