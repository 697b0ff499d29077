"""The board in headless Chromium, opened from a signed link: live counts, no reload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient

from labeling.local_server import free_loopback_port
from service.api.app import create_app
from service.api.serving import served as serving
from service.auth.keys import create_key
from service.core.orm import utcnow
from service.flow.tasks import push_times
from service.quality.run import run_agreement
from tests.flow.conftest import Flow, service_settings
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, ImagePool, register_pool

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOT_ENV = "ACTIVELABEL_WRITE_DOCS_SCREENSHOT"  # set to 1 to refresh the README's picture


@pytest.fixture
def served(tmp_path: Path, fashion_pool: ImagePool, gold_dir: Path) -> Iterator[Flow]:
    """The service on a loopback port, with a flow under way: seeds, a round, answers."""
    port = free_loopback_port()
    settings = service_settings(
        tmp_path, fashion_pool, gold_dir, public_url=f"http://127.0.0.1:{port}"
    )
    app = create_app(settings)
    with serving(app, port):
        with app.state.context.sessions() as session:
            key = create_key(session, "board test").token.get_secret_value()
        client = TestClient(app)  # in process, on the started app (no second lifespan)
        client.headers["Authorization"] = f"Bearer {key}"
        yield Flow(client, fashion_pool)


def start_flow(flow: Flow) -> dict[int, int]:
    """Seeds, a round with two gold tasks, answers (two pairs, one wrong gold), a report."""
    register_pool(flow.client, str(flow.pool.folder))
    assert flow.client.post("/v1/gold/register").json()["registered"] == 10
    images = flow.images()
    flow.seed(images["pool"][:20])
    chosen = images["pool"][20:32] + images["gold"][:2]
    round_id, tasks = flow.push(chosen)
    with flow.ctx.sessions() as session:
        pushed = push_times(session)[round_id]
    for n, image in enumerate(chosen[:5]):
        flow.answer(tasks[image], image, flow.true_label(image), annotator=7, at=pushed)
        if n < 2:
            flow.answer(tasks[image], image, flow.true_label(image), annotator=8, at=pushed)
    gold = chosen[-1]
    flow.answer(
        tasks[gold],
        gold,
        "Bag" if flow.true_label(gold) != "Bag" else "Coat",
        annotator=8,
        at=pushed,
    )
    run_agreement(flow.ctx, act=False)
    return {image: tasks[image] for image in chosen[5:-1]}  # still waiting for an answer


def count(page: Page, column: str) -> int:
    return int(page.locator(f"[data-column={column}] .count").inner_text())


@pytest.mark.browser
def test_the_board_shows_live_counts_and_follows_an_answer_without_reloading(
    served: Flow, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    flow = served
    waiting = start_flow(flow)
    expected = {c["name"]: c["count"] for c in flow.client.get("/v1/board").json()["columns"]}
    url = flow.client.post("/v1/board/link").json()["url"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            response = page.goto(url, wait_until="load")  # no key: the signed link alone
            assert response is not None and response.status == 200
            for name, value in expected.items():
                assert count(page, name) == value, name
            assert page.locator(".col.bottleneck").count() == 1
            assert page.locator("svg rect").count() >= 2  # the charts drew today's bars
            page.evaluate("() => { window.notReloaded = true; }")

            image, task = next(iter(waiting.items()))
            flow.answer(task, image, flow.true_label(image), annotator=7, at=utcnow())
            page.wait_for_function(
                f"() => document.querySelector('[data-column=suggested] .count')"
                f".textContent === '{expected['suggested'] - 1}'",
                timeout=15_000,
            )
            assert page.evaluate("() => window.notReloaded === true")
            assert count(page, "confirmed") == expected["confirmed"] + 1
            quality = flow.client.get("/v1/board").json()["quality"]["agreement"]
            shown = page.locator("#agreement [data-verdict]")
            assert shown.get_attribute("data-verdict") == quality["verdict"]
            assert shown.inner_text() == quality["verdict"].replace("_", " ")
            assert page.locator("#agreement li[data-check]").count() == len(quality["checks"]) == 3
            report = page.locator("#agreement a")
            assert httpx.get(str(report.evaluate("a => a.href"))).status_code == 200
            shot = tmp_path / "flow-board.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get(SCREENSHOT_ENV) == "1":
                docs = Path(__file__).resolve().parents[2] / "docs" / "flow-board.png"
                page.screenshot(path=str(docs), full_page=True)
        finally:
            browser.close()
