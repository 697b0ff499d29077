"""Shared fixtures: real Fashion-MNIST images on disk and service settings in a temp dir."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.datasets import load_fashion_mnist, write_pngs
from tests.helpers import POOL_SIZE, ImagePool
from tests.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def fashion_pool(tmp_path_factory: pytest.TempPathFactory) -> ImagePool:
    """240 real Fashion-MNIST test images as PNGs, plus a truncated PNG and a text file."""
    root = tmp_path_factory.mktemp("images")
    folder = root / "pool"
    images, labels = load_fashion_mnist("test")
    write_pngs(images[:POOL_SIZE], folder, names=[f"{i:05d}.png" for i in range(POOL_SIZE)])
    truncated = folder / "zz-truncated.png"
    truncated.write_bytes((folder / "00000.png").read_bytes()[:60])
    notes = folder / "zz-notes.png"
    notes.write_text("this is not an image\n")
    return ImagePool(
        root=root,
        folder=folder,
        labels=[int(x) for x in labels[:POOL_SIZE]],
        broken=[truncated, notes],
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; each test asks it for a fresh database."""
    # Not under pytest's temp tree: that is private to this user, and the server may run as
    # the `postgres` user.
    root = Path(tempfile.mkdtemp(prefix="activelabel-postgres-"))
    server = PostgresServer(root / "data")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


# Which databases `database_url` runs on: both by default; `make test-postgres` picks one.
TEST_DATABASES = os.environ.get("ACTIVELABEL_TEST_DATABASES", "sqlite,postgresql").split(",")


@pytest.fixture(params=TEST_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The service's database: its SQLite default, then a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
