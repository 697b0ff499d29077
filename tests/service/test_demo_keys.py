"""The demo's keys: each run issues an admin and a pipeline key and revokes the last run's."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.auth.keys import create_key, list_keys, rotate_keys
from service.auth.roles import Role, UnknownRole
from service.demo import DemoKeys, demo_keys
from tests.helpers import ImagePool, api_client, make_settings


def status_with(client: TestClient, token: str, path: str) -> tuple[int, str | None]:
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
    return response.status_code, code


def live_keys(client: TestClient) -> list[tuple[str, str]]:
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        return sorted((key.name, key.role) for key in list_keys(session) if key.revoked_at is None)


def test_three_demo_runs_leave_one_live_admin_and_one_live_pipeline_key(
    tmp_path: Path, fashion_pool: ImagePool
) -> None:
    with api_client(make_settings(tmp_path, fashion_pool)) as client:
        app: FastAPI = client.app  # type: ignore[assignment]
        with app.state.context.sessions() as session:
            other = create_key(session, "label studio", Role.pipeline).token.get_secret_value()
            # What an earlier demo made: one more admin "demo pipeline" key per run.
            legacy = [
                create_key(session, "demo pipeline").token.get_secret_value() for _ in range(2)
            ]
        runs: list[DemoKeys] = [demo_keys(app) for _ in range(3)]

        assert live_keys(client) == [
            ("demo admin", "admin"),
            ("demo pipeline", "pipeline"),
            ("label studio", "pipeline"),
            ("tests", "admin"),
        ]
        earlier = legacy + [token for run in runs[:-1] for token in (run.admin, run.pipeline)]
        for token in earlier:
            assert status_with(client, token, "/v1/guide") == (401, "invalid_api_key")
        latest = runs[-1]
        assert status_with(client, latest.pipeline, "/v1/rounds") == (200, None)
        assert status_with(client, latest.pipeline, "/v1/audit") == (403, "insufficient_role")
        assert status_with(client, latest.admin, "/v1/audit") == (200, None)
        assert status_with(client, other, "/v1/images") == (200, None)  # other names untouched
        assert client.get("/v1/images").status_code == 200  # the "tests" key too


def test_a_failed_rotation_revokes_nothing(tmp_path: Path, fashion_pool: ImagePool) -> None:
    with api_client(make_settings(tmp_path, fashion_pool)) as client:
        app: FastAPI = client.app  # type: ignore[assignment]
        keys = demo_keys(app)
        with app.state.context.sessions() as session:
            with pytest.raises(UnknownRole):
                rotate_keys(session, {"demo admin": Role.admin, "demo pipeline": "superuser"})
        assert live_keys(client) == [
            ("demo admin", "admin"),
            ("demo pipeline", "pipeline"),
            ("tests", "admin"),
        ]
        assert status_with(client, keys.admin, "/v1/audit") == (200, None)
        assert status_with(client, keys.pipeline, "/v1/rounds") == (200, None)
