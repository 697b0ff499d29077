"""A real Label Studio for the integration tests, started once per test session.

The first start migrates a fresh database (~45 s on two cores); that data directory is
kept as a template so that every further server starts from a copy in seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from labeling.local_server import LocalLabelStudio, copy_data_dir
from service.core.settings import LabelStudioSettings, get_settings
from tests.helpers import ImagePool, api_client, make_settings
from tests.integration.studio_http import StudioClient


@dataclass(frozen=True)
class StudioTemplate:
    data_dir: Path
    api_token: str
    executable: Path


@pytest.fixture(scope="session")
def studio_template(tmp_path_factory: pytest.TempPathFactory) -> StudioTemplate:
    executable = get_settings().label_studio.executable
    template = LocalLabelStudio(
        executable=executable, data_dir=tmp_path_factory.mktemp("label-studio-template")
    )
    template.start(timeout_s=300)
    template.stop()
    return StudioTemplate(template.data_dir, template.api_token, executable)


def start_from_template(template: StudioTemplate, data_dir: Path) -> LocalLabelStudio:
    copy_data_dir(template.data_dir, data_dir)
    server = LocalLabelStudio(
        executable=template.executable, data_dir=data_dir, api_token=template.api_token
    )
    server.start(timeout_s=180)
    return server


@pytest.fixture(scope="session")
def label_studio(
    studio_template: StudioTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalLabelStudio]:
    """One running server for the session; each test uses its own project."""
    server = start_from_template(studio_template, tmp_path_factory.mktemp("label-studio"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def studio(label_studio: LocalLabelStudio) -> Iterator[StudioClient]:
    """Plain HTTP access to the session's Label Studio, as an annotator's client."""
    client = StudioClient(label_studio.url, label_studio.api_token)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def service(
    tmp_path: Path, fashion_pool: ImagePool, label_studio: LocalLabelStudio
) -> Iterator[TestClient]:
    """A running service whose project in the session's Label Studio is its own."""
    settings = LabelStudioSettings(
        url=label_studio.url,
        api_key=SecretStr(label_studio.api_token),
        project_title=f"test {uuid.uuid4().hex[:10]}",
    )
    with api_client(make_settings(tmp_path, fashion_pool, label_studio=settings)) as client:
        yield client
