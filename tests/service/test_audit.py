"""The audit trail: written with each change, append-only, filtered, paginated, exported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from service.audit import AuditQuery, entries, record
from service.audit.tables import AuditEntry, AuditIsAppendOnly
from service.core.db import make_engine
from service.core.logs import scope
from tests.helpers import (
    ImagePool,
    all_items,
    api_client,
    image_ids_by_name,
    make_settings,
    register_pool,
)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    with Session(engine) as db:
        yield db
    engine.dispose()


def test_entries_are_written_in_the_callers_transaction(session: Session) -> None:
    with scope("req-1", actor="key:ci"):
        record(session, "model.activated", subject=("model_version", "m1"), after={"n": 1})
    session.rollback()  # the change failed: no entry either
    assert entries(session, AuditQuery()) == []
    with scope("req-2", actor="key:ci"):
        record(session, "model.activated", subject=("model_version", "m2"), before={"a": None})
    session.commit()
    (entry,) = entries(session, AuditQuery())
    assert (entry.actor, entry.request_id, entry.subject_id) == ("key:ci", "req-2", "m2")
    assert entry.before == {"a": None} and entry.after is None
    with pytest.raises(ValueError, match="action must be one of"):
        record(session, "image.burned", subject=("image", 1))


def test_entries_can_be_neither_changed_nor_deleted(session: Session) -> None:
    entry = record(session, "label.changed", actor="me", subject=("image", 1), after={"l": "Bag"})
    session.commit()
    entry.actor = "someone else"
    with pytest.raises(AuditIsAppendOnly):
        session.commit()
    session.rollback()
    session.delete(entry)
    with pytest.raises(AuditIsAppendOnly):
        session.commit()
    session.rollback()
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    assert [e.actor for e in entries(session, AuditQuery())] == ["me"]


def test_filters_select_by_action_subject_actor_and_time(session: Session) -> None:
    for i in range(6):
        action = "image.registered" if i % 2 else "round.selected"
        record(session, action, actor=f"a{i % 3}", subject=("round", i))
    session.commit()
    assert len(entries(session, AuditQuery(action="round.selected"))) == 3
    assert [e.subject_id for e in entries(session, AuditQuery(actor="a1"))] == ["1", "4"]
    assert len(entries(session, AuditQuery(subject_type="round", subject_id="5"))) == 1
    now = datetime.now(UTC)
    assert len(entries(session, AuditQuery(since=now - timedelta(minutes=5)))) == 6
    assert entries(session, AuditQuery(since=now + timedelta(minutes=5))) == []
    assert entries(session, AuditQuery(until=now - timedelta(minutes=5))) == []


def test_the_api_pages_filters_and_exports_what_use_cases_recorded(
    tmp_path: Path, fashion_pool: ImagePool, database_url: str
) -> None:
    settings = make_settings(tmp_path, fashion_pool, database_url=database_url)
    with api_client(settings) as client:
        register_pool(client, str(fashion_pool.folder))
        ids = image_ids_by_name(client)
        labels = [{"image_id": ids["00000.png"], "label": "Bag"}]
        imported = client.post(
            "/v1/labels", json={"labels": labels}, headers={"X-Request-ID": "abc"}
        )
        assert imported.status_code == 200 and imported.headers["X-Request-ID"] == "abc"
        registered = all_items(client, "/v1/audit", action="image.registered", limit=1)
        assert sum(e["after"]["registered"] for e in registered) == len(fashion_pool.labels)
        (change,) = client.get("/v1/audit", params={"action": "label.changed"}).json()["items"]
        assert change["request_id"] == "abc" and change["actor"] == "key:tests"
        assert (change["before"], change["after"]) == (
            {str(ids["00000.png"]): None},
            {str(ids["00000.png"]): "Bag"},
        )
        export = client.get("/v1/audit/export", params={"actor": "key:tests"})
        assert export.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [line["id"] for line in lines] == [change["id"]]
        bad = client.get("/v1/audit", params={"since": "yesterday"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
        assert client.get("/v1/audit", headers={"Authorization": ""}).status_code == 401


def test_export_streams_every_entry_in_batches(session: Session, database_url: str) -> None:
    from service.audit import export_lines
    from service.core.db import session_factory

    for i in range(25):
        record(session, "task.pushed", actor="x", subject=("round", i))
    session.commit()
    factory = session_factory(session.get_bind())  # type: ignore[arg-type]
    lines = list(export_lines(factory, AuditQuery(), batch=10))
    assert [json.loads(line)["subject"]["id"] for line in lines] == [str(i) for i in range(25)]
    assert isinstance(session.get(AuditEntry, 1), AuditEntry)
