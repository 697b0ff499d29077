"""`activelabel report agreement|drift` end to end against a service on a loopback port."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from service.api.app import create_app
from service.api.serving import served as serving
from service.auth.keys import create_key
from service.cli import app as cli
from tests.helpers import ImagePool
from tests.quality_service.drift_sets import DriftSets, drift_sets, drift_settings

__all__ = ["drift_sets"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(
    tmp_path: Path, fashion_pool: ImagePool, drift_sets: DriftSets
) -> Iterator[tuple[str, str]]:
    """(URL, API key) of a real service; drift checks only when asked."""
    settings = drift_settings(tmp_path, fashion_pool, drift_sets, None, drift_after_ingestion=False)
    app = create_app(settings)
    port = free_port()
    with serving(app, port):
        with app.state.context.sessions() as session:
            token = create_key(session, "cli test").token.get_secret_value()
        yield f"http://127.0.0.1:{port}", token


def register(url: str, key: str, folder: Path) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        job = client.post("/v1/images/register", json={"folder": str(folder)}).json()
        while (status := client.get(job["status_url"]).json())["status"] not in (
            "succeeded",
            "failed",
        ):
            time.sleep(0.2)
        assert status["status"] == "succeeded", status


def test_report_commands_against_a_served_api(
    served: tuple[str, str], fashion_pool: ImagePool, drift_sets: DriftSets, tmp_path: Path
) -> None:
    url, key = served
    runner = CliRunner()
    env = {"ACTIVELABEL_API_URL": url, "ACTIVELABEL_API_KEY": key}
    register(url, key, fashion_pool.folder)
    fixed = runner.invoke(cli, ["report", "drift"], env=env)
    assert fixed.exit_code == 0, fixed.output
    assert "no drift report was stored" in fixed.output and "reference fixed" in fixed.output

    register(url, key, drift_sets.unseen)
    page = tmp_path / "drift.html"
    result = runner.invoke(cli, ["report", "drift", "--html", str(page)], env=env)
    assert result.exit_code == 0, result.output
    assert "drift report" in result.output and "FAILED" in result.output
    assert "images" in result.output and "DRIFT" in result.output
    assert "data window:" in result.output and "new_images 40" in result.output
    assert page.read_text().count("data:image/png;base64,") == 2

    as_json = runner.invoke(cli, ["report", "agreement", "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert '"kind": "agreement"' in as_json.output

    refused = runner.invoke(cli, ["report", "drift", "--api-key", "al_wrong"], env=env)
    assert refused.exit_code == 1 and "invalid_api_key" in refused.output
