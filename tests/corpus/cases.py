"""The bad-input corpus as a table: a request, the 4xx it must get and the error code.

Requests are built from an `Env` (the running service's folders and ids) when a case runs;
files are made by `tests.corpus.files`, never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.studio.webhooks import SECRET_HEADER
from tests.corpus.files import png_claiming

HUGE = 99999999999999999999999  # beyond 64 bits
SECRET = "corpus-webhook-secret"
LIMITS = {
    "upload": 64 * 1024,
    "body": 4 * 1024 * 1024,
    "multipart": 256 * 1024,
    "webhook": 64 * 1024,
}


@dataclass(frozen=True)
class Env:
    client: TestClient
    root: Path  # the allowed root
    folder: Path  # a registered folder under it
    outside: Path  # a folder outside every allowed root
    ids: dict[str, int]  # registered file name -> image id
    finished_job: str


Request = tuple[str, str, dict[str, Any]]  # method, url, keyword arguments of the client


@dataclass(frozen=True)
class Case:
    id: str
    request: Callable[[Env], Request]
    status: int
    code: str


def upload(name: str, content: bytes) -> Callable[[Env], Request]:
    return lambda _env: ("POST", "/v1/images/upload", {"files": {"file": (name, content)}})


def register(folder: Callable[[Env], Any]) -> Callable[[Env], Request]:
    return lambda env: ("POST", "/v1/images/register", {"json": {"folder": folder(env)}})


def post_json(url: str, body: Any) -> Callable[[Env], Request]:
    return lambda _env: ("POST", url, {"json": body})


def get(url: str) -> Callable[[Env], Request]:
    return lambda _env: ("GET", url, {})


def labels(body: Callable[[Env], Any]) -> Callable[[Env], Request]:
    return lambda env: ("POST", "/v1/labels", {"json": body(env)})


def webhook(body: Any, headers: dict[str, str]) -> Callable[[Env], Request]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda _env: ("POST", "/v1/webhooks/label-studio", {"content": content, **headers})


def chunked(url: str, size: int, content_type: str, **headers: str) -> Callable[[Env], Request]:
    """A body sent without a Content-Length, in 64 KiB chunks."""

    def chunks() -> Iterator[bytes]:
        for _ in range(size // 65536):
            yield b"x" * 65536

    sent = {"Content-Type": content_type, **headers}
    return lambda _env: ("POST", url, {"content": chunks(), "headers": sent})


def annotation_event(label: str, *, image_id: int = 1, annotation_id: int = 1) -> dict[str, Any]:
    """An ANNOTATION_CREATED delivery shaped as Label Studio sends it."""
    result = [{"from_name": "label", "to_name": "image", "type": "choices"}]
    result[0]["value"] = {"choices": [label]}  # type: ignore[assignment]
    return {
        "action": "ANNOTATION_CREATED",
        "annotation": {
            "id": annotation_id,
            "result": result,
            "was_cancelled": False,
            "created_at": "2026-11-28T01:27:02Z",
            "updated_at": "2026-11-28T01:27:02Z",
            "task": 900 + image_id,
            "completed_by": 2,
        },
        "task": {"id": 900 + image_id, "data": {"image_id": image_id}},
        "project": {"id": 1},
    }


GOOD_SECRET = {"headers": {SECRET_HEADER: SECRET}}
SEED = "seed"


def name(env: Env, index: int) -> int:
    return env.ids[f"{index:05d}.png"]


CASES = [
    # Files that are not usable images.
    Case("upload-zero-bytes", upload("empty.png", b""), 422, "invalid_image"),
    Case(
        "upload-truncated-png", upload("cut.png", png_claiming(28, 28)[:40]), 422, "invalid_image"
    ),
    Case("upload-text-as-png", upload("notes.png", b"just some text\n" * 8), 422, "invalid_image"),
    Case(
        "upload-png-claims-30000x30000",
        upload("bomb.png", png_claiming(30000, 30000)),
        422,
        "invalid_image",
    ),
    Case(
        "upload-without-file-field",
        lambda _e: ("POST", "/v1/images/upload", {"data": {"x": "1"}}),
        422,
        "invalid_request",
    ),
    Case(
        "upload-over-file-limit",
        upload("big.png", b"\x89PNG" + b"\0" * LIMITS["upload"]),
        413,
        "payload_too_large",
    ),
    Case(
        "multipart-over-body-limit",
        upload("huge.png", b"\0" * (LIMITS["multipart"] + 1)),
        413,
        "payload_too_large",
    ),
    Case(
        "multipart-chunked-over-limit",
        chunked("/v1/images/upload", 4 * LIMITS["multipart"], "multipart/form-data; boundary=b"),
        413,
        "payload_too_large",
    ),
    # Folders: traversal, links leading out, NUL bytes, nonsense.
    Case(
        "register-dotdot-traversal",
        register(lambda e: f"{e.folder}/../../outside"),
        403,
        "path_not_allowed",
    ),
    Case("register-absolute-outside", register(lambda e: str(e.outside)), 403, "path_not_allowed"),
    Case(
        "register-folder-link-leading-out",
        register(lambda e: str(e.root / "elsewhere")),
        403,
        "path_not_allowed",
    ),
    Case(
        "found-register-file-link-leading-out",
        register(lambda e: str(e.root / "escape.png")),
        403,
        "path_not_allowed",
    ),
    Case(
        "found-register-nul-in-folder", register(lambda e: f"{e.folder}\x00/x"), 422, "invalid_path"
    ),
    Case("register-empty-folder-name", register(lambda _e: ""), 422, "invalid_path"),
    Case(
        "register-missing-folder", register(lambda e: str(e.root / "nope")), 404, "path_not_found"
    ),
    Case(
        "register-a-file-not-a-folder",
        register(lambda e: str(e.root / "notes.txt")),
        404,
        "not_found",
    ),
    Case("register-folder-as-number", register(lambda _e: 5), 422, "invalid_request"),
    Case("register-folder-as-list", register(lambda e: [str(e.folder)]), 422, "invalid_request"),
    Case(
        "register-unknown-field",
        lambda e: (
            "POST",
            "/v1/images/register",
            {"json": {"folder": str(e.folder), "deep": True}},
        ),
        422,
        "invalid_request",
    ),
    # Huge integers in paths and bodies.
    Case("found-media-huge-id", get(f"/v1/media/{HUGE}?exp=1&sig=x"), 403, "invalid_signature"),
    Case("round-huge-id", get(f"/v1/rounds/{HUGE}"), 422, "invalid_request"),
    Case(
        "push-huge-round-id",
        lambda _e: ("POST", f"/v1/rounds/{HUGE}/push", {}),
        422,
        "invalid_request",
    ),
    Case(
        "retry-huge-image-id",
        lambda _e: ("POST", f"/v1/images/{HUGE}/retry", {}),
        422,
        "invalid_request",
    ),
    Case(
        "predict-huge-image-id",
        post_json("/v1/predictions", {"image_ids": [HUGE]}),
        400,
        "bad_request",
    ),
    Case(
        "labels-huge-image-id",
        labels(lambda _e: {"labels": [{"image_id": HUGE, "label": "Bag"}]}),
        422,
        "invalid_request",
    ),
    Case("round-huge-k", post_json("/v1/rounds", {"k": HUGE}), 422, "invalid_request"),
    Case("images-huge-limit", get(f"/v1/images?limit={HUGE}"), 422, "invalid_request"),
    Case(
        "annotations-huge-image-filter",
        get(f"/v1/annotations?image_id={HUGE}"),
        422,
        "invalid_request",
    ),
    # Wrong types.
    Case(
        "labels-object-for-list",
        labels(lambda e: {"labels": {"image_id": name(e, 25), "label": "Bag"}}),
        422,
        "invalid_request",
    ),
    Case(
        "labels-string-for-id",
        labels(lambda _e: {"labels": [{"image_id": "one", "label": "Bag"}]}),
        422,
        "invalid_request",
    ),
    Case(
        "labels-not-json",
        lambda _e: (
            "POST",
            "/v1/labels",
            {"content": b"{labels:", "headers": {"Content-Type": "application/json"}},
        ),
        422,
        "invalid_request",
    ),
    Case("round-k-as-string", post_json("/v1/rounds", {"k": "ten"}), 422, "invalid_request"),
    Case(
        "predict-ids-as-string",
        post_json("/v1/predictions", {"image_ids": "1,2"}),
        400,
        "bad_request",
    ),
    Case("predict-list-for-object", post_json("/v1/predictions", [1, 2]), 400, "bad_request"),
    Case(
        "predict-csv-body",
        lambda _e: (
            "POST",
            "/v1/predictions",
            {"content": b"1,2", "headers": {"Content-Type": "text/csv"}},
        ),
        415,
        "unsupported_media_type",
    ),
    Case(
        "predict-zero-byte-file",
        lambda _e: ("POST", "/v1/predictions", {"files": [("files", ("e.png", b""))]}),
        422,
        "invalid_image",
    ),
    Case(
        "predict-1001-ids",
        post_json("/v1/predictions", {"image_ids": list(range(1, 1002))}),
        400,
        "bad_request",
    ),
    # Unknown names: labels, strategies, versions, rounds, jobs.
    Case(
        "labels-unknown-label",
        labels(lambda e: {"labels": [{"image_id": name(e, 25), "label": "Hat"}]}),
        422,
        "unknown_label",
    ),
    Case(
        "labels-one-bad-entry-refuses-the-batch",
        labels(
            lambda e: {
                "labels": [
                    {"image_id": name(e, 25), "label": "Bag"},
                    {"image_id": name(e, 26), "label": "bag "},
                ]
            }
        ),
        422,
        "unknown_label",
    ),
    Case(
        "labels-unregistered-image",
        labels(lambda _e: {"labels": [{"image_id": 10**9, "label": "Bag"}]}),
        404,
        "not_found",
    ),
    Case(
        "labels-over-100000-entries",
        labels(lambda _e: {"labels": [{"image_id": 1, "label": "Bag"}] * 100_001}),
        422,
        "invalid_request",
    ),
    Case(
        "round-unknown-strategy",
        post_json("/v1/rounds", {"strategy": "clairvoyance"}),
        422,
        "unknown_strategy",
    ),
    Case(
        "found-push-unknown-round",
        lambda _e: ("POST", "/v1/rounds/4242/push", {}),
        404,
        "not_found",
    ),
    Case(
        "found-activate-unknown-version",
        lambda _e: ("POST", "/v1/models/h-000000000000/activate", {}),
        404,
        "not_found",
    ),
    Case("job-unknown", get("/v1/jobs/no-such-job"), 404, "not_found"),
    Case(
        "found-cancel-a-finished-job",
        lambda e: ("POST", f"/v1/jobs/{e.finished_job}/cancel", {}),
        409,
        "job_finished",
    ),
    Case("jobs-unknown-status", get("/v1/jobs?status=lost"), 422, "invalid_request"),
    # Unknown enum values and unknown query parameters: refused, never ignored.
    Case(
        "found-export-unknown-format", get("/v1/labels/export?format=xml"), 422, "invalid_request"
    ),
    Case("reports-unknown-kind", get("/v1/reports?kind=weather"), 422, "invalid_request"),
    Case("jobs-unknown-kind", get("/v1/jobs?kind=teleport"), 422, "invalid_request"),
    Case("audit-unknown-action", get("/v1/audit?action=image.stolen"), 422, "invalid_request"),
    Case(
        "labels-unknown-source",
        labels(
            lambda e: {"labels": [{"image_id": name(e, 25), "label": "Bag"}], "source": "oracle"}
        ),
        422,
        "invalid_request",
    ),
    Case("export-unknown-parameter", get("/v1/labels/export?fromat=csv"), 422, "invalid_request"),
    Case("images-unknown-parameter", get("/v1/images?page=2"), 422, "invalid_request"),
    Case(
        "media-unknown-parameter-beside-a-signature",
        get("/v1/media/1?exp=1&sig=x&size=large"),
        422,
        "invalid_request",
    ),
    # Cursors not handed out by the service.
    Case("cursor-garbage", get("/v1/images?cursor=%%%not-base64"), 400, "invalid_cursor"),
    Case("cursor-wrong-key-type", get("/v1/jobs?cursor=MQ"), 400, "invalid_cursor"),  # int 1
    Case(
        "cursor-beyond-64-bits",
        get("/v1/labels?cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"),
        400,
        "invalid_cursor",
    ),
    # Oversized JSON bodies, declared or streamed.
    Case(
        "json-over-body-limit",
        labels(lambda _e: {"labels": [{"image_id": 1, "label": "x" * (LIMITS["body"])}]}),
        413,
        "payload_too_large",
    ),
    Case(
        "json-chunked-over-limit",
        chunked("/v1/labels", 4 * LIMITS["body"], "application/json"),
        413,
        "payload_too_large",
    ),
    # Webhooks: forged, missing secret, unusable bodies.
    Case(
        "webhook-missing-secret",
        webhook(annotation_event("Bag"), {}),
        401,
        "invalid_webhook_secret",
    ),
    Case(
        "webhook-forged-secret",
        webhook(annotation_event("Bag"), {"headers": {SECRET_HEADER: SECRET + "x"}}),
        401,
        "invalid_webhook_secret",
    ),
    Case(
        "webhook-huge-annotation-id",
        webhook(annotation_event("Bag", annotation_id=HUGE), GOOD_SECRET),
        400,
        "invalid_webhook",
    ),
    Case(
        "webhook-unhandled-action",
        webhook({"action": "PROJECT_UPDATED", "project": {"id": 1}}, GOOD_SECRET),
        422,
        "unsupported_webhook_action",
    ),
    Case(
        "webhook-chunked-over-limit",
        chunked(
            "/v1/webhooks/label-studio",
            4 * LIMITS["webhook"],
            "application/json",
            **{SECRET_HEADER: SECRET},
        ),
        413,
        "payload_too_large",
    ),
    # Keys.
    Case(
        "no-api-key",
        lambda _e: ("GET", "/v1/images", {"headers": {"Authorization": ""}}),
        401,
        "missing_api_key",
    ),
]
