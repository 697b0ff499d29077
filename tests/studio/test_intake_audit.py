"""Stored annotations are audited once, and two deliveries of one at once store it once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from labeling.tasks import StudioAnnotation
from service.audit import AuditQuery, entries
from service.audit.tables import AuditEntry
from service.core.db import lock_for_writing
from service.core.orm import Annotation
from service.studio.intake import IntakeReport, delete_annotations, store_annotations
from tests.studio.conftest import add_images
from tests.studio.test_intake import T0, annotation, store


def annotation_entries(session: Session) -> list[tuple[str, str, Any, Any]]:
    rows = entries(session, AuditQuery(subject_type="annotation"))
    return [(e.action, e.subject_id, e.before, e.after) for e in rows]


def test_each_annotation_is_audited_when_received_and_when_changed_never_on_a_replay(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        (image_id,) = add_images(session, 1)
        first = annotation(1, image_id, "Bag", parent=77)
        corrected = annotation(1, image_id, "Coat", at=T0 + timedelta(minutes=1), parent=77)
        store(session, guide, first)
        store(session, guide, first)  # the webhook replayed
        store(session, guide, first, first)  # a reconciliation reading it twice
        store(session, guide, corrected)
        store(session, guide, corrected, first)  # the older state comes late
        report = IntakeReport()
        delete_annotations(session, [1], report)
        session.commit()

        trail = annotation_entries(session)
        assert [(action, subject) for action, subject, _, _ in trail] == [
            ("annotation.received", "1"),
            ("annotation.updated", "1"),
            ("annotation.deleted", "1"),
        ]
        (_, _, before, received), (_, _, changed_from, changed_to) = trail[0], trail[1]
        assert before is None
        assert received is not None and changed_from == received
        assert {k: received[k] for k in ("task_id", "image_id", "annotator", "label")} == {
            "task_id": 1000 + image_id,
            "image_id": image_id,
            "annotator": 5,
            "label": "Bag",
        }
        assert received["shown"] == {
            "prediction_id": 77,
            "model_version": "h-abc123",
            "label": "Coat",
        }
        assert changed_to is not None and changed_to["label"] == "Coat"
        actors = set(
            session.scalars(select(AuditEntry.actor).where(AuditEntry.subject_type == "annotation"))
        )
        assert actors == {"studio-user:5"}


def test_an_annotation_and_its_entry_are_written_or_rolled_back_together(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        (image_id,) = add_images(session, 1)
        store_annotations(
            session,
            [annotation(1, image_id, "Bag")],
            guide=guide,
            shown={},
            report=IntakeReport(),
            project_id=3,
        )
        assert len(annotation_entries(session)) == 1  # flushed with the row
        session.rollback()
        assert session.scalars(select(Annotation)).all() == []
        assert annotation_entries(session) == []


def hold_write_lock(session: Session) -> None:
    """Block every writer of annotations until `session` ends (readers go on)."""
    if session.get_bind().dialect.name == "sqlite":
        lock_for_writing(session)
    else:
        session.execute(text("LOCK TABLE annotations IN EXCLUSIVE MODE"))


def deliver_twice_at_once(
    sessions: sessionmaker[Session], guide: Guide, item: StudioAnnotation
) -> list[IntakeReport]:
    """Store `item` from two threads that both look before either may write."""
    reports: list[IntakeReport] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            with sessions() as session:
                reports.append(store(session, guide, item))
        except BaseException as err:  # reported by the caller
            errors.append(err)

    with sessions() as blocker:
        hold_write_lock(blocker)
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # both have looked and now wait for the lock
        blocker.rollback()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return reports


def test_two_deliveries_of_one_annotation_at_once_store_one_row_and_one_entry(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    """Both read "no such row" before either writes: one inserts, the other finds its row."""
    with sessions() as session:
        (image_id,) = add_images(session, 1)
    reports = deliver_twice_at_once(sessions, guide, annotation(1, image_id, "Bag"))
    assert sorted((r.new, r.unchanged) for r in reports) == [(0, 1), (1, 0)]
    with sessions() as session:
        assert len(session.scalars(select(Annotation)).all()) == 1
        assert [action for action, *_ in annotation_entries(session)] == ["annotation.received"]


def test_two_deliveries_of_one_correction_at_once_audit_it_once(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        (image_id,) = add_images(session, 1)
        store(session, guide, annotation(1, image_id, "Bag"))
    correction = annotation(1, image_id, "Coat", at=T0 + timedelta(minutes=1))
    reports = deliver_twice_at_once(sessions, guide, correction)
    assert sorted((r.updated, r.unchanged) for r in reports) == [(0, 1), (1, 0)]
    with sessions() as session:
        assert session.scalars(select(Annotation.label)).one() == "Coat"
        trail = [(action, after["label"]) for action, _, _, after in annotation_entries(session)]
        assert trail == [("annotation.received", "Bag"), ("annotation.updated", "Coat")]
