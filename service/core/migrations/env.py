"""Alembic's entry: runs the revisions on the connection it is given, or on the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine

from service.core.migrations import service_metadata

config = context.config


def run(connection: Connection, metadata: MetaData | None) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if given is not None:  # the service upgrading itself, or a test
    run(given, config.attributes.get("target_metadata"))
else:  # the `alembic` command line: the URL of the ini file or of the service's settings
    from service.core.settings import get_settings

    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    with create_engine(url).connect() as connection:
        run(connection, service_metadata())
        connection.commit()
