"""Database engine and sessions (SQLite by default, PostgreSQL by URL).

Every session is one of three kinds, chosen by its bind (`bind_for`), never at call sites:

- `WRITE`: a unit of work that writes (a POST request, a job's lease or outcome write). On
  SQLite it begins with `BEGIN IMMEDIATE`, so it takes the write lock first, waiting on the
  busy handler up to the busy timeout; what it reads cannot change before it writes.
- `READ`: a read-only unit (a GET request, a job's cancel check). On SQLite a deferred
  `BEGIN` with `query_only` on: it never takes the write lock and never waits for one. On
  PostgreSQL `SET TRANSACTION READ ONLY`.
- `ON_WRITE` (the default, for long job handlers): reads outside a transaction, and
  `BEGIN IMMEDIATE` just before the first write; handlers commit right after they write.

pysqlite's own deferred `BEGIN` is never used: a transaction that had read and then writes
cannot wait for the lock (SQLite answers SQLITE_BUSY at once, without the busy handler).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.core.migrations import upgrade_database

WRITE, READ, ON_WRITE = "write", "read", "on_write"
KIND_OPTION = "activelabel_transaction"
BUSY_OPTION = "activelabel_busy_timeout_ms"  # a unit's own busy timeout (short waits)
_BUSY_MS, _QUERY_ONLY = "activelabel.busy_ms", "activelabel.query_only"


def make_engine(url: str, *, busy_timeout_s: float = 30.0, migrate: bool = True) -> Engine:
    """An engine for `url`, its schema upgraded to the newest revision unless `migrate` is off.

    SQLite connections get WAL, foreign keys and a busy timeout (how long a writer waits
    for another one before failing); PostgreSQL connections wait for a row lock as long
    (`lock_timeout`) and are checked before use.
    """
    if busy_timeout_s < 0:
        raise ValueError(f"busy_timeout_s must be >= 0, got {busy_timeout_s}")
    busy_ms = int(busy_timeout_s * 1000)
    if make_url(url).get_backend_name() == "sqlite":
        _ensure_sqlite_parent(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
            # a request holds two connections (its key check, its unit); jobs hold their own
            pool_size=10,
            max_overflow=30,
            pool_timeout=max(busy_timeout_s, 1.0),
        )
        event.listen(engine, "connect", partial(_sqlite_connect, busy_ms=busy_ms))
        event.listen(engine, "begin", partial(_sqlite_begin, busy_ms=busy_ms))
    else:
        # lock_timeout 0 would mean "wait for ever" on PostgreSQL
        options = f"-c lock_timeout={max(busy_ms, 1)}"
        engine = create_engine(url, pool_pre_ping=True, connect_args={"options": options})
        event.listen(engine, "begin", _postgres_begin)
    if migrate:
        upgrade_database(engine)
    return engine


def bind_for(engine: Engine, kind: str, *, busy_timeout_s: float | None = None) -> Engine:
    """`engine` as the bind of sessions of `kind` (`WRITE`, `READ` or `ON_WRITE`)."""
    if kind not in (WRITE, READ, ON_WRITE):
        raise ValueError(f"a session kind is {WRITE!r}, {READ!r} or {ON_WRITE!r}, not {kind!r}")
    options: dict[str, Any] = {KIND_OPTION: kind}
    if busy_timeout_s is not None:
        options[BUSY_OPTION] = max(int(busy_timeout_s * 1000), 1)
    return engine.execution_options(**options)


def _ensure_sqlite_parent(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_connect(dbapi_connection: Any, record: Any, *, busy_ms: int) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN: `_sqlite_begin` decides
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.close()
    record.info[_BUSY_MS], record.info[_QUERY_ONLY] = busy_ms, False


def _sqlite_begin(conn: Connection, *, busy_ms: int) -> None:
    """Begin the transaction the way the session's kind asks (see the module docstring)."""
    options = conn.get_execution_options()
    kind = options.get(KIND_OPTION, ON_WRITE)
    dbapi = conn.connection.dbapi_connection
    info = conn.connection.info
    _set_pragma(dbapi, info, _BUSY_MS, "busy_timeout", options.get(BUSY_OPTION, busy_ms))
    _set_pragma(dbapi, info, _QUERY_ONLY, "query_only", kind == READ)
    if kind == ON_WRITE:
        dbapi.isolation_level = "IMMEDIATE"  # pysqlite begins so before the first write
        return
    dbapi.isolation_level = None
    conn.exec_driver_sql("BEGIN IMMEDIATE" if kind == WRITE else "BEGIN")


def _set_pragma(dbapi: Any, info: dict[str, Any], key: str, pragma: str, value: Any) -> None:
    if info.get(key) != value:
        dbapi.execute(f"PRAGMA {pragma}={int(value)}")
        info[key] = value


def _postgres_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    if options.get(KIND_OPTION) == READ:
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    if BUSY_OPTION in options:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(options[BUSY_OPTION])}")


def lock_for_writing(session: Session) -> None:
    """Take SQLite's write lock now, so that what `session` reads next cannot change before
    it writes (a session of kind `ON_WRITE` has read outside a transaction so far).

    A write unit holds the lock already; on PostgreSQL this does nothing: lock the rows read
    (`SELECT ... FOR UPDATE`) instead.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions of kind `ON_WRITE` by default; pass `bind=bind_for(...)` for another kind."""
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
