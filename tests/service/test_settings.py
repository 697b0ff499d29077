"""Configuration comes from ACTIVELABEL_* variables, nested with `__`."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.core.settings import Settings


def test_nested_variables_and_json_lists_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVELABEL_LABEL_STUDIO__URL", "http://127.0.0.1:9001")
    monkeypatch.setenv("ACTIVELABEL_LABEL_STUDIO__API_KEY", "secret-token")
    monkeypatch.setenv("ACTIVELABEL_MODEL__DEVICE", "cpu")
    monkeypatch.setenv("ACTIVELABEL_MODEL__IMAGE_SIZE", "128")
    monkeypatch.setenv("ACTIVELABEL_ALLOWED_ROOTS", '["/data/a", "/data/b"]')
    monkeypatch.setenv("ACTIVELABEL_DATA_DIR", "/var/lib/activelabel")
    settings = Settings()
    assert settings.label_studio.url == "http://127.0.0.1:9001"
    assert settings.label_studio.api_key.get_secret_value() == "secret-token"
    assert "secret-token" not in repr(settings)
    assert (settings.model.device, settings.model.image_size) == ("cpu", 128)
    assert settings.allowed_roots == [Path("/data/a"), Path("/data/b")]
    assert settings.resolved_database_url == "sqlite:////var/lib/activelabel/activelabel.db"


def test_a_database_url_wins_over_the_sqlite_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVELABEL_DATABASE_URL", "postgresql+psycopg://u:p@127.0.0.1/al")
    assert Settings().resolved_database_url == "postgresql+psycopg://u:p@127.0.0.1/al"


def test_out_of_range_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVELABEL_MODEL__BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="batch_size"):
        Settings()
