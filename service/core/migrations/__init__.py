"""Schema migrations (Alembic): the chain of revisions under `versions/` and how to apply it.

Every table change is a revision whose `down_revision` is the current head. Start-up runs
`upgrade_database(engine)`; a database made before migrations existed (tables but no
`alembic_version`) is stamped with the foundation revision first, then upgraded.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text

FOUNDATION = "0001"
HERE = Path(__file__).resolve().parent
# Any constant will do: it only has to be the same in every process upgrading one database.
_PG_LOCK_KEY = 0x61637476  # "actv"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for this package's revisions (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def heads() -> list[str]:
    """The revisions nothing builds on yet; more than one means a merge revision is due."""
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_database(engine: Engine, revision: str = "heads") -> None:
    """Bring the database up to `revision`, serialised across processes on PostgreSQL."""
    _migrate(engine, lambda config: _upgrade(config, revision))


def downgrade_database(engine: Engine, revision: str) -> None:
    """Take the database back down to `revision` ("base": no tables at all)."""
    _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, step: Callable[[Config], None]) -> None:
    """Run `step` on one connection in one transaction, holding the migration lock.

    On SQLite, foreign keys are off meanwhile: a batch migration rebuilds a table, and
    dropping the old copy must not cascade to the rows that refer to it.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                _lock(connection)
                config = alembic_config()
                config.attributes["connection"] = connection
                step(config)
            if sqlite:
                _check_foreign_keys(connection)
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _lock(connection: Connection) -> None:
    """Hold the database's migration lock until the transaction ends (other starters wait)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock; DDL joins the transaction


def _upgrade(config: Config, revision: str) -> None:
    tables = inspect(config.attributes["connection"])
    if not tables.has_table("alembic_version") and tables.has_table("images"):
        command.stamp(config, FOUNDATION)  # made by create_all before migrations existed
    command.upgrade(config, revision)


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left {len(broken)} rows with dangling foreign keys")


def service_metadata() -> MetaData:
    """Every table of the service: all its modules are imported first (for autogenerate)."""
    import service
    from service.core.orm import Base

    for module in pkgutil.walk_packages(service.__path__, "service."):
        if module.name not in ("service.cli", "service.demo") and ".migrations" not in module.name:
            importlib.import_module(module.name)
    return Base.metadata


def compare_with(connection: Connection, metadata: MetaData) -> list[tuple[object, ...]]:
    """Differences between the migrated schema and `metadata` (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))
