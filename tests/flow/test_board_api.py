"""The board's routes: the JSON twin in OpenAPI, the page, and signed links for browsers."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from service.flow.links import board_link
from service.flow.timing import Done, bottleneck, buckets, stage
from service.quality.run import run_agreement
from tests.flow.conftest import Flow


def test_the_json_twin_is_documented_and_the_page_embeds_it(flow: Flow) -> None:
    schema = flow.client.get("/openapi.json").json()
    answer = schema["paths"]["/v1/board"]["get"]["responses"]["200"]["content"]
    assert answer["application/json"]["schema"] == {"$ref": "#/components/schemas/Board"}
    assert {"columns", "wip", "timing", "bottleneck", "quality"} <= set(
        schema["components"]["schemas"]["Board"]["properties"]
    )
    board = flow.client.get("/v1/board").json()
    assert [c["name"] for c in board["columns"]] == [
        "unlabeled",
        "suggested",
        "in_review",
        "confirmed",
        "flagged",
    ]
    page = flow.client.get("/v1/board.html")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert '<script id="board-data" type="application/json">{"schema_version":"1"' in page.text
    assert "src=" not in page.text and "<link" not in page.text  # nothing loaded from elsewhere


def test_a_signed_link_opens_the_board_and_its_reports_without_a_key(flow: Flow) -> None:
    created = flow.client.post("/v1/board/link", params={"lifetime_s": 600})
    assert created.status_code == 200
    link = urlsplit(created.json()["url"])
    assert link.path == "/v1/board.html" and created.json()["expires_at"] > time.time() + 590
    query = link.query
    bare = {"Authorization": ""}
    assert flow.client.get(f"/v1/board.html?{query}", headers=bare).status_code == 200
    assert flow.client.get(f"/v1/board?{query}", headers=bare).json()["schema_version"] == "1"
    report = run_agreement(flow.ctx, act=False).report_id
    page = flow.client.get(f"/v1/board/reports/{report}.html?{query}", headers=bare)
    assert page.status_code == 200 and "Agreement report" in page.text
    # The link opens nothing else, and a forged, altered or expired one opens nothing.
    assert flow.client.get(f"/v1/reports/{report}.html?{query}", headers=bare).status_code == 401
    params = parse_qs(query)
    forged = f"exp={params['exp'][0]}&sig={'0' * 64}"
    assert flow.client.get(f"/v1/board?{forged}", headers=bare).json()["error"]["code"] == (
        "invalid_signature"
    )
    later = f"exp={int(params['exp'][0]) + 1}&sig={params['sig'][0]}"
    assert flow.client.get(f"/v1/board?{later}", headers=bare).status_code == 403
    url, _ = board_link(flow.ctx.media, lifetime_s=60, now=time.time() - 120)
    expired = flow.client.get(url.replace("board.html", "board"), headers=bare).json()
    assert expired["error"]["code"] == "expired_signature"
    media = flow.ctx.media.url(1)  # an image's signature is no board link
    media_query = urlsplit(media).query
    assert flow.client.get(f"/v1/board?{media_query}", headers=bare).status_code == 403
    refused = flow.client.post("/v1/board/link", headers=bare)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


def test_buckets_align_to_whole_hours_and_take_the_median_lead_time() -> None:
    done = [Done(at(9), at(10, 5)), Done(at(9), at(10, 55)), Done(at(11), at(11, 30))]
    series = buckets(done, now=at(11, 40), width_s=3600, count=3)
    assert [b.start for b in series] == [at(9), at(10), at(11)]
    assert [b.confirmed for b in series] == [0, 2, 1]
    assert [b.lead_time_median_s for b in series] == [None, 90 * 60, 30 * 60]
    with pytest.raises(ValueError, match="width and count"):
        buckets(done, now=at(11), width_s=0, count=3)


def test_the_bottleneck_is_the_longest_wait_and_a_stalled_queue_comes_first() -> None:
    window = 3600.0
    push, annotate = stage("push", 0, 40, window), stage("annotate", 30, 60, window)
    review = stage("review", 12, 6, window)
    assert annotate.wait_s == pytest.approx(1800) and review.wait_s == pytest.approx(7200)
    assert bottleneck([push, annotate, review], window).stage == "review"
    stalled = stage("push", 3, 0, window)
    assert stalled.stalled and stalled.wait_s is None
    assert bottleneck([stalled, annotate, review], window).stage == "push"
    empty = [stage("push", 0, 0, window), stage("annotate", 0, 5, window)]
    assert bottleneck(empty, window).stage is None
    with pytest.raises(ValueError, match="counts >= 0"):
        stage("review", -1, 0, window)
