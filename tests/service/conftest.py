"""Fixtures shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import ImagePool, api_client, make_settings, register_pool


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool) -> Iterator[TestClient]:
    """A started service with the Fashion-MNIST test pool registered (a module may override)."""
    with api_client(make_settings(tmp_path, fashion_pool)) as test_client:
        register_pool(test_client, str(fashion_pool.folder))
        yield test_client
