"""One transaction discipline: write units take the write lock when they begin, reads never.

Each test holds the lock explicitly (`BEGIN IMMEDIATE` on a connection of its own) and
releases it on an event, so what waits and what fails is decided, not timed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from service.core.db import READ, WRITE, bind_for, make_engine, session_factory
from service.core.errors import classify, is_busy
from tests.postgres_server import PostgresServer

BUSY_S = 0.3  # the busy timeout these tests run with


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "units.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_s=BUSY_S, migrate=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER)")
        conn.exec_driver_sql("INSERT INTO counters VALUES (1, 0)")
    yield engine, path
    engine.dispose()


def unit(engine: Engine, kind: str) -> Session:
    return session_factory(engine)(bind=bind_for(engine, kind))


def value(engine: Engine) -> int:
    with unit(engine, READ) as session:
        return int(session.execute(text("SELECT value FROM counters")).scalar_one())


class LockHolder:
    """Another process's writer: holds the write lock from `hold()` until `release()`."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def hold(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")
        self.connection.execute("UPDATE counters SET value = value + 1")

    def release(self) -> None:
        self.connection.execute("COMMIT")
        self.connection.close()


def test_a_deferred_begin_that_read_cannot_wait_for_the_lock(db: tuple[Engine, Path]) -> None:
    """The cause: pysqlite's deferred BEGIN, a read, then a write after another writer
    committed answers SQLITE_BUSY at once, without waiting on the busy handler."""
    _, path = db
    reader = sqlite3.connect(path, timeout=5, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT value FROM counters").fetchall()
    holder = LockHolder(path)
    holder.hold()
    holder.release()
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        reader.execute("UPDATE counters SET value = value + 10")
    assert time.monotonic() - started < 1.0  # a 5 s busy timeout, not waited on
    reader.close()


def test_a_unit_that_reads_then_writes_is_never_overtaken(db: tuple[Engine, Path]) -> None:
    """Read-modify-write in a write unit: a concurrent writer waits for it, no update lost."""
    engine, _ = db
    read_done, other_done = threading.Event(), threading.Event()

    def other_writer() -> None:
        read_done.wait(5)
        with unit(engine, WRITE) as session:  # waits on the busy handler for our unit
            session.execute(text("UPDATE counters SET value = value + 1"))
            session.commit()
        other_done.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    with unit(engine, WRITE) as session:
        seen = session.execute(text("SELECT value FROM counters")).scalar_one()
        read_done.set()
        assert not other_done.wait(BUSY_S / 3)  # it cannot commit between our read and write
        session.execute(text("UPDATE counters SET value = :v"), {"v": seen + 10})
        session.commit()
    thread.join(5)
    assert other_done.is_set()
    assert value(engine) == 11


def test_a_write_unit_waits_for_another_writer_then_succeeds(db: tuple[Engine, Path]) -> None:
    engine, path = db
    holder = LockHolder(path)
    holder.hold()
    releaser = threading.Timer(BUSY_S / 2, holder.release)
    releaser.start()
    started = time.monotonic()
    with unit(engine, WRITE) as session:
        session.execute(text("SELECT value FROM counters")).scalar_one()
        session.execute(text("UPDATE counters SET value = value + 10"))
        session.commit()
    assert time.monotonic() - started >= BUSY_S / 4  # it waited for the lock
    releaser.join()
    assert value(engine) == 11


def test_a_unit_busy_past_the_timeout_fails_as_database_busy(db: tuple[Engine, Path]) -> None:
    engine, path = db
    holder = LockHolder(path)
    holder.hold()
    started = time.monotonic()
    with pytest.raises(OperationalError) as caught, unit(engine, WRITE) as session:
        session.execute(text("SELECT value FROM counters"))
    assert time.monotonic() - started >= BUSY_S * 0.9  # the busy timeout was waited
    assert is_busy(caught.value)
    status, code, _, _ = classify(caught.value)
    assert (status, code) == (503, "database_busy")
    holder.release()


def test_a_read_unit_never_waits_for_the_write_lock_nor_takes_it(
    db: tuple[Engine, Path],
) -> None:
    engine, path = db
    holder = LockHolder(path)
    holder.hold()
    started = time.monotonic()
    assert value(engine) == 0  # the last committed value, at once
    assert time.monotonic() - started < BUSY_S / 2
    holder.release()
    with pytest.raises(OperationalError, match="readonly"), unit(engine, READ) as session:
        session.execute(text("UPDATE counters SET value = 5"))
    with unit(engine, WRITE) as session:  # the same pooled connection writes again after
        session.execute(text("UPDATE counters SET value = 7"))
        session.commit()
    assert value(engine) == 7


def test_the_default_session_takes_the_lock_at_its_first_write_only(
    db: tuple[Engine, Path],
) -> None:
    """Long job handlers read outside a transaction and lock from their first write on."""
    engine, path = db
    with session_factory(engine)() as session:
        assert session.execute(text("SELECT value FROM counters")).scalar_one() == 0
        holder = LockHolder(path)  # a writer is free to go while we only read
        holder.hold()
        holder.release()
        session.execute(text("UPDATE counters SET value = value + 10"))
        session.commit()
    assert value(engine) == 11


def test_postgres_read_units_are_read_only_and_waits_are_bounded(
    postgres: PostgresServer,
) -> None:
    database_url = postgres.new_database()
    engine = make_engine(database_url, busy_timeout_s=BUSY_S, migrate=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER)")
        conn.exec_driver_sql("INSERT INTO counters VALUES (1, 0)")
    with pytest.raises(DBAPIError, match="read-only") as caught, unit(engine, READ) as session:
        session.execute(text("UPDATE counters SET value = 5"))
    assert not is_busy(caught.value)  # read-only transaction: a bug, not a busy database
    with unit(engine, WRITE) as holder:
        holder.execute(text("UPDATE counters SET value = 1"))  # holds the row lock
        with pytest.raises(OperationalError) as waited, unit(engine, WRITE) as session:
            session.execute(text("UPDATE counters SET value = 2"))
        assert is_busy(waited.value)  # lock_timeout: database_busy
        holder.commit()
    engine.dispose()
