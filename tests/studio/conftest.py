"""A migrated database of the service with a few registered images, for intake tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from guides import Guide, example_guide_path, load_guide
from service.core.db import make_engine, session_factory
from service.core.orm import Image, utcnow


@pytest.fixture(scope="session")
def guide() -> Guide:
    return load_guide(example_guide_path("fashion-mnist"))


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """The service's database, migrated: SQLite, then a real PostgreSQL."""
    engine = make_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def add_images(session: Session, count: int) -> list[int]:
    """`count` image rows (no files needed: intake never opens them); returns their ids."""
    now = utcnow()
    rows = [
        {
            "path": f"/pool/{i:06d}.png",
            "sha256": f"{i:064x}",
            "width": 28,
            "height": 28,
            "source": "folder",
            "registered_at": now,
        }
        for i in range(count)
    ]
    session.execute(insert(Image), rows)
    session.commit()
    return list(session.scalars(select(Image.id).order_by(Image.id)))
