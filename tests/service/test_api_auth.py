"""Auth on every route, revoked keys, signed media URLs, CORS and cursor pagination."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.keys import SkippedUses, create_key, record_use, revoke_key
from service.auth.tables import ApiKey
from service.core.db import WRITE, bind_for, lock_for_writing, make_engine, session_factory
from service.core.orm import utcnow
from service.core.settings import AuthSettings
from tests.helpers import ImagePool, all_items, api_client, make_settings, register_pool

PUBLIC = {"/health", "/v1/health", "/v1/media/{image_id}", "/v1/webhooks/label-studio"}
# Label Studio's ML backend: the key as a Basic password or a Bearer token; its webhook
# ignores events without a key (tests/service/test_ml_backend.py checks "Start training").
ML_BACKEND_SECURITY = [{"MlBackendBasic": []}, {"ApiKey": []}]
PUBLIC |= {"/v1/ml-backend/webhook"}


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path, fashion_pool, auth=AuthSettings(cors_origins=["http://studio.test:8080"])
    )
    with api_client(settings) as test_client:
        yield test_client


def test_every_route_but_health_media_and_webhooks_needs_a_key(client: TestClient) -> None:
    """Walks every operation of the OpenAPI schema (every route is documented there)."""
    schema = client.get("/openapi.json").json()
    operations = [
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 15 and all(path.startswith("/v1/") for _, path in operations)
    assert {path for _, path in operations} >= PUBLIC - {"/health"}
    for method, path in operations + [("GET", "/metrics")]:
        if path in PUBLIC:
            continue
        concrete = path.replace("{", "").replace("}", "")  # any value: the key is checked first
        response = client.request(method, concrete, headers={"Authorization": ""})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "missing_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
        if path in schema["paths"]:
            expected = ML_BACKEND_SECURITY if "/ml-backend/" in path else [{"ApiKey": []}]
            assert schema["paths"][path][method.lower()]["security"] == expected
    assert client.get("/health", headers={"Authorization": ""}).status_code == 200


def test_wrong_forged_and_revoked_keys_are_refused(client: TestClient) -> None:
    token = client.headers["Authorization"].removeprefix("Bearer ")
    assert client.get("/v1/images").status_code == 200
    for bad in ("nonsense", token[:-1] + ("A" if token[-1] != "A" else "B"), "al_00000000_x"):
        response = client.get("/v1/images", headers={"Authorization": f"Bearer {bad}"})
        assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        revoke_key(session, token.split("_")[1])
    response = client.get("/v1/images")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")


def test_a_key_records_when_it_was_last_used_and_is_stored_hashed(client: TestClient) -> None:
    from service.auth.tables import ApiKey

    token = client.headers["Authorization"].removeprefix("Bearer ")
    client.get("/v1/images")
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        (key,) = session.query(ApiKey).all()
        assert key.last_used_at is not None and key.revoked_at is None
        assert token not in (key.token_hash, key.prefix, key.name)


def test_signed_media_urls_refuse_forgery_other_images_and_expiry(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    register_pool(client, str(fashion_pool.folder))
    first, second = client.get("/v1/images", params={"limit": 2}).json()["items"]
    anonymous = {"Authorization": ""}
    assert client.get(first["media_url"], headers=anonymous).status_code == 200
    query = parse_qs(urlsplit(first["media_url"]).query)
    exp, sig = query["exp"][0], query["sig"][0]

    def fetch(image_id: int, exp: str, sig: str) -> tuple[int, str]:
        response = client.get(
            f"/v1/media/{image_id}", params={"exp": exp, "sig": sig}, headers=anonymous
        )
        return response.status_code, response.json()["error"]["code"]

    forged = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert fetch(first["id"], exp, forged) == (403, "invalid_signature")
    assert fetch(second["id"], exp, sig) == (403, "invalid_signature")  # another image
    assert fetch(first["id"], str(int(exp) + 86_400), sig) == (403, "invalid_signature")
    assert fetch(10**30, exp, sig) == (403, "invalid_signature")  # a huge id: never a 500
    signer = client.app.state.context.media  # type: ignore[attr-defined]
    past = int(time.time()) - 10
    assert fetch(first["id"], str(past), signer.signature(first["id"], past)) == (
        403,
        "expired_signature",
    )
    assert client.get(f"/v1/media/{first['id']}", headers=anonymous).status_code == 422


def test_cors_answers_the_configured_origin_only(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "GET", "Authorization": ""}
    allowed = client.options(
        "/v1/media/1", headers={"Origin": "http://studio.test:8080", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://studio.test:8080"
    refused = client.options("/v1/media/1", headers={"Origin": "http://evil.test", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_cors_defaults_to_the_label_studio_origin(tmp_path: Path, fashion_pool: ImagePool) -> None:
    settings = make_settings(tmp_path, fashion_pool)
    assert settings.cors_origins == ["http://127.0.0.1:9"]


def test_pages_cover_every_item_once_and_bad_cursors_are_refused(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    register_pool(client, str(fashion_pool.folder))
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/images", params=params).json()
        pages.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [image_id for page in pages for image_id in page]
    assert len(ids) == len(set(ids)) == len(fashion_pool.labels)  # no duplicates, no gaps
    assert ids == sorted(ids) and all(len(page) == 7 for page in pages[:-1])
    assert len(all_items(client, "/v1/images", limit=1000)) == len(fashion_pool.labels)
    for bad in ("%%%", "bm90IGpzb24", "InN0cmluZyI"):  # not base64, not JSON, wrong key type
        response = client.get("/v1/images", params={"cursor": bad})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_cursor")
    assert client.get("/v1/images", params={"limit": 0}).status_code == 422


def hold_key_row(session: Session, key_id: int) -> None:
    """Make every write of this key wait until `session` ends."""
    if session.get_bind().dialect.name == "sqlite":
        lock_for_writing(session)
    else:
        session.execute(select(ApiKey).where(ApiKey.id == key_id).with_for_update())


def test_uses_a_busy_database_skips_are_logged_once_a_minute_per_key(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    units = partial(sessions, bind=bind_for(engine, WRITE, busy_timeout_s=0.05))
    skipped = SkippedUses()
    caplog.set_level(logging.DEBUG, logger="service.auth.keys")
    try:
        with sessions() as session:
            key = create_key(session, "busy").key
        start = utcnow()
        with sessions() as blocker:
            hold_key_row(blocker, key.id)
            for second in (0, 10, 30, 59, 61, 62):
                record_use(units, key, skipped=skipped, now=start + timedelta(seconds=second))
        said = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert [r.getMessage() for r in said] == [
            f"the use of key {key.prefix} was not recorded: the database is busy"
            f" ({more} more times since this was last logged)"
            for more in (0, 3)
        ]
        assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 4
        assert key.last_used_at is None
        record_use(units, key, skipped=skipped, now=start + timedelta(seconds=63))  # not busy
        with sessions() as session:
            assert session.get(ApiKey, key.id).last_used_at is not None
    finally:
        engine.dispose()
