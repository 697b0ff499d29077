"""Command line: `activelabel serve`, `demo`, `db`, `keys` and `report`."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx
import typer
from sqlalchemy.orm import Session

from service.auth.roles import Role
from service.core.settings import get_settings


class ReportKind(StrEnum):
    agreement = "agreement"
    drift = "drift"


app = typer.Typer(
    help="Active-learning labeling with Label Studio.", no_args_is_help=True, add_completion=False
)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the HTTP API (configured by ACTIVELABEL_* variables)."""
    import uvicorn

    from service.api.app import create_app
    from service.core.logs import configure_json_logging

    configure_json_logging(log_level)  # one JSON object per line, with the request id
    uvicorn.run(
        create_app(get_settings()), host=host, port=port, log_level=log_level, log_config=None
    )


db = typer.Typer(help="The service's database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db, name="db")


@db.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Migrate the configured database to `revision` (default: the newest)."""
    from service.core.db import make_engine
    from service.core.migrations import current_revision, upgrade_database

    engine = make_engine(get_settings().resolved_database_url, migrate=False)
    upgrade_database(engine, revision)
    typer.echo(f"database at revision {current_revision(engine)}")
    engine.dispose()


@db.command("current")
def db_current() -> None:
    """Print the revision the configured database is at (`none` before the first upgrade)."""
    from service.core.db import make_engine
    from service.core.migrations import current_revision

    engine = make_engine(get_settings().resolved_database_url, migrate=False)
    typer.echo(current_revision(engine) or "none")
    engine.dispose()


keys = typer.Typer(
    help="API keys: `Authorization: Bearer <key>` on every call.", no_args_is_help=True
)
app.add_typer(keys, name="keys")


@contextmanager
def _session() -> Iterator[Session]:
    from service.core.db import make_engine, session_factory

    engine = make_engine(get_settings().resolved_database_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who or what uses the key")],
    role: Annotated[
        Role, typer.Option(help="what the key may do (the role matrix in the README)")
    ] = Role.admin,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from service.auth.keys import create_key

    with _session() as session:
        issued = create_key(session, name, role.value)
        typer.echo(
            f"created key {issued.key.id} ({issued.key.name}, role {issued.key.role});"
            " it is shown only now:"
        )
        typer.echo(issued.token.get_secret_value())


@keys.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="the key's id or prefix")]) -> None:
    """Revoke a key: calls with it answer 401 `invalid_api_key` from now on."""
    from service.auth.keys import revoke_key
    from service.core.errors import ServiceError

    with _session() as session:
        try:
            revoked = revoke_key(session, key)
        except ServiceError as err:
            typer.echo(err.message, err=True)
            raise typer.Exit(1) from err
        typer.echo(f"revoked key {revoked.id} ({revoked.name}, al_{revoked.prefix}_...)")


@keys.command("list")
def keys_list() -> None:
    """Every key: id, prefix, name, role, created, last used, revoked (never the key)."""
    from service.auth.keys import list_keys

    with _session() as session:
        for key in list_keys(session):
            typer.echo(
                f"{key.id}\tal_{key.prefix}_...\t{key.name}\t{key.role}"
                f"\tcreated {_when(key.created_at)}"
                f"\tlast used {_when(key.last_used_at)}\trevoked {_when(key.revoked_at)}"
            )


@app.command()
def report(
    kind: Annotated[ReportKind, typer.Argument(help="which report to run")],
    html: Annotated[Path | None, typer.Option(help="write the report's HTML page here")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print the report's JSON")] = False,
    api_url: Annotated[
        str, typer.Option(envvar="ACTIVELABEL_API_URL", help="the service")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str, typer.Option(envvar="ACTIVELABEL_API_KEY", help="an API key", show_default=False)
    ] = "",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the job")] = 1800.0,
) -> None:
    """Run an agreement or drift report through the service API and summarise it."""
    from service.quality.cli_report import ReportFailed, run_report

    try:
        run_report(
            kind.value,
            api_url=api_url,
            api_key=api_key,
            html=html,
            as_json=json_,
            timeout_s=timeout,
        )
    except (ReportFailed, httpx.HTTPError) as err:
        typer.echo(f"report failed: {err}", err=True)
        raise typer.Exit(1) from err


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "never"


@app.command()
def demo(
    images: Annotated[
        int, typer.Option(min=50, max=60000, help="Fashion-MNIST images in the pool")
    ] = 3000,
    k: Annotated[int, typer.Option(min=1, max=1000, help="images chosen for the round")] = 20,
    seed_per_class: Annotated[int, typer.Option(min=1, max=100, help="seed labels per class")] = 5,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its state")] = Path(".demo"),
    port: Annotated[int, typer.Option(help="service port (0 = any free port)")] = 8000,
    label_studio_port: Annotated[
        int, typer.Option(help="Label Studio port (0 = any free port)")
    ] = 8080,
    wait: Annotated[bool, typer.Option(help="stay up until interrupted")] = True,
) -> None:
    """One round on Fashion-MNIST: local Label Studio, seeded model, top-K pushed."""
    from service.demo import DemoOptions, run_demo

    logging.basicConfig(level=logging.WARNING)
    run_demo(
        DemoOptions(
            images=images,
            k=k,
            seed_per_class=seed_per_class,
            data_dir=data_dir,
            port=port,
            label_studio_port=label_studio_port,
            wait=wait,
        ),
        get_settings(),
    )


if __name__ == "__main__":
    app()
