"""Registering images through the API: bad files are reported, bad paths refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from tests.helpers import ImagePool, api_client, make_settings, register_pool, wait_for_job


@pytest.fixture
def client(tmp_path: Path, fashion_pool: ImagePool, database_url: str) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, fashion_pool, database_url=database_url)
    with api_client(settings) as test_client:
        yield test_client


def test_folder_registration_skips_and_reports_broken_files(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    result = register_pool(client, str(fashion_pool.folder))
    assert result["registered"] == len(fashion_pool.labels)
    skipped = {Path(s["path"]).name: s for s in result["skipped"]}
    assert skipped["zz-truncated.png"]["code"] == "image_corrupt"
    assert skipped["zz-notes.png"]["code"] == "not_an_image"
    assert all(s["reason"] for s in skipped.values())
    again = register_pool(client, str(fashion_pool.folder))
    assert (again["registered"], again["already_known"]) == (0, len(fashion_pool.labels))
    assert client.get("/v1/images/counts").json()["total"] == len(fashion_pool.labels)


def test_paths_outside_the_allowed_roots_are_refused(client: TestClient, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    response = client.post("/v1/images/register", json={"folder": str(outside)})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "path_not_allowed"
    sneaky = client.post("/v1/images/register", json={"folder": "/etc/../etc"})
    assert sneaky.json()["error"]["code"] == "path_not_allowed"


def test_missing_folder_under_an_allowed_root_is_not_found(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    response = client.post("/v1/images/register", json={"folder": str(fashion_pool.root / "nope")})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "path_not_found")


def test_wrong_types_get_a_validation_error_body(client: TestClient) -> None:
    response = client.post("/v1/images/register", json={"folder": ["a", "b"]})
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "invalid_request" and body["details"][0]["location"] == "body.folder"


def test_upload_registers_once_and_refuses_corrupt_files(client: TestClient) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="PNG")
    files = {"file": ("red.png", buffer.getvalue(), "image/png")}
    first = client.post("/v1/images/upload", files=files)
    assert first.status_code == 201, first.text
    assert (first.json()["width"], first.json()["height"]) == (40, 30)
    second = client.post("/v1/images/upload", files=files)
    assert second.json()["id"] == first.json()["id"]
    broken = client.post(
        "/v1/images/upload", files={"file": ("x.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")}
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "invalid_image"


def test_media_serves_registered_images_through_signed_urls(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    register_pool(client, str(fashion_pool.folder))
    image = client.get("/v1/images").json()["items"][0]
    anonymous = {"Authorization": ""}
    response = client.get(image["media_url"], headers={"Origin": "http://127.0.0.1:9", **anonymous})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:9"
    assert response.content.startswith(b"\x89PNG")


def test_jobs_report_percent_and_unknown_jobs_are_404(
    client: TestClient, fashion_pool: ImagePool
) -> None:
    accepted = client.post("/v1/images/register", json={"folder": str(fashion_pool.folder)}).json()
    job = wait_for_job(client, accepted)
    assert (job["status"], job["percent"], job["kind"]) == ("succeeded", 100, "register")
    assert client.get("/v1/jobs/nope").status_code == 404


def test_huge_uploads_and_huge_images_are_refused(tmp_path: Path, fashion_pool: ImagePool) -> None:
    settings = make_settings(
        tmp_path, fashion_pool, max_upload_bytes=50_000, max_image_pixels=10_000
    )
    with api_client(settings) as client:
        too_big = client.post("/v1/images/upload", files={"file": ("big.bin", b"\0" * 50_001)})
        assert (too_big.status_code, too_big.json()["error"]["code"]) == (413, "payload_too_large")
        buffer = io.BytesIO()
        PILImage.new("L", (200, 200)).save(buffer, format="PNG")  # 40,000 pixels, few bytes
        many_pixels = client.post(
            "/v1/images/upload", files={"file": ("wide.png", buffer.getvalue())}
        )
        assert many_pixels.status_code == 422
        assert many_pixels.json()["error"]["details"]["code"] == "image_too_large"
        assert client.get("/v1/images/counts").json()["total"] == 0
