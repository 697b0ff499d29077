"""Database engine and sessions (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.core.migrations import upgrade_database


def make_engine(url: str, *, busy_timeout_s: float = 30.0, migrate: bool = True) -> Engine:
    """An engine for `url`, its schema upgraded to the newest revision unless `migrate` is off.

    Every SQLite connection gets WAL, foreign keys and a busy timeout (how long a writer waits
    for another one before failing); PostgreSQL connections are checked before use.
    """
    if busy_timeout_s < 0:
        raise ValueError(f"busy_timeout_s must be >= 0, got {busy_timeout_s}")
    if make_url(url).get_backend_name() == "sqlite":
        _ensure_sqlite_parent(url)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s}
        )
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_timeout_s=busy_timeout_s))
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        upgrade_database(engine)
    return engine


def _ensure_sqlite_parent(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, busy_timeout_s: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
