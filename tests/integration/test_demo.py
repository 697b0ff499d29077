"""`activelabel demo` end to end: what it prints leads an annotator to pre-labeled tasks."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from guides import example_guide_path, load_guide
from labeling.accounts import login_token
from labeling.local_server import copy_data_dir, is_healthy
from service.core.settings import QualitySettings
from service.learning.gold import gold_count
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, TEST_IMAGE_SIZE
from tests.integration.conftest import StudioTemplate
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
DEMO_IMAGES, DEMO_K = 300, 10


@dataclass(frozen=True)
class DemoOutput:
    text: str
    studio_url: str
    username: str
    password: str
    project_url: str
    first_task_url: str
    annotate_url: str
    token: str
    service_url: str
    api_key: str  # the pipeline key
    admin_key: str
    annotators: list[tuple[str, str]]  # email, password
    report_url: str
    board_url: str


def field(text: str, name: str) -> str:
    match = re.search(rf"^{name}:\s+(\S.*?)\s*$", text, re.MULTILINE)
    assert match, f"the demo did not print '{name}:'\n{text}"
    return match.group(1)


def pump_lines(process: subprocess.Popen[str]) -> tuple[queue.Queue[str | None], threading.Thread]:
    """Read the process's output on a thread; None marks its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


def read_until_ready(lines: queue.Queue[str | None], timeout_s: float) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("the demo exited early:\n" + "".join(seen))
        seen.append(line)
        if line.startswith("ready:"):
            return "".join(seen)
    raise AssertionError("the demo was not ready in time:\n" + "".join(seen))


@pytest.fixture(scope="module")
def demo(
    studio_template: StudioTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoOutput]:
    data_dir = tmp_path_factory.mktemp("demo")
    copy_data_dir(studio_template.data_dir, data_dir / "label-studio")
    (data_dir / "label-studio" / "activelabel-token").write_text(studio_template.api_token)
    env = dict(os.environ, COLUMNS="200", ACTIVELABEL_MODEL__IMAGE_SIZE=str(TEST_IMAGE_SIZE))
    command = [sys.executable, "-m", "service.cli", "demo", "--images", str(DEMO_IMAGES)]
    command += ["--k", str(DEMO_K), "--data-dir", str(data_dir)]
    command += ["--port", "0", "--label-studio-port", "0"]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    ) as process:  # closes the output pipe on the way out
        lines, pump = pump_lines(process)
        try:
            text = read_until_ready(lines, timeout_s=600)
            login = field(text, "login").split(" / ")
            studio_url = field(text, "Label Studio")
            yield DemoOutput(
                text,
                studio_url,
                login[0],
                login[1],
                field(text, "project"),
                field(text, "first task"),
                field(text, "annotate"),
                studio_template.api_token,
                field(text, "service").split()[0],
                field(text, "pipeline key").split()[0],
                field(text, "admin key").split()[0],
                [tuple(field(text, f"annotator {n}").split(" / ")) for n in (1, 2)],
                field(text, "agreement report"),
                field(text, "flow board"),
            )
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
            pump.join(timeout=10)
    assert process.returncode == 0
    assert not is_healthy(studio_url), "the demo left Label Studio running"


def test_demo_prints_a_project_whose_tasks_carry_suggestions(
    demo: DemoOutput, request: pytest.FixtureRequest
) -> None:
    studio = StudioClient(demo.studio_url, demo.token)
    request.addfinalizer(studio.close)
    tasks = studio.tasks(project_id_of(demo))
    assert len(tasks) == DEMO_K + gold_count(DEMO_K, QualitySettings().gold_share)
    for task in tasks:
        (prediction,) = task["predictions"]
        assert prediction["result"][0]["value"]["choices"]
        image = httpx.get(task["data"]["image"], headers={"Origin": demo.studio_url})
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        assert image.headers["access-control-allow-origin"] in ("*", demo.studio_url)
    assert "images/s" in demo.text


def test_demo_prints_a_key_the_pipeline_user_calls_the_api_with(demo: DemoOutput) -> None:
    rounds = demo.service_url + "/v1/rounds"
    answer = httpx.get(rounds, headers={"Authorization": f"Bearer {demo.api_key}"})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 1
    assert httpx.get(rounds).json()["error"]["code"] == "missing_api_key"
    audit = demo.service_url + "/v1/audit"  # admin and reviewer only
    refused = httpx.get(audit, headers={"Authorization": f"Bearer {demo.api_key}"})
    assert refused.json()["error"]["code"] == "insufficient_role"
    assert httpx.get(audit, headers={"Authorization": f"Bearer {demo.admin_key}"}).is_success


def test_demo_creates_two_annotator_logins_that_see_the_project(demo: DemoOutput) -> None:
    assert len({email for email, _ in demo.annotators}) == 2
    for email, password in demo.annotators:
        annotator = StudioClient(demo.studio_url, login_token(demo.studio_url, email, password))
        try:
            assert len(annotator.tasks(project_id_of(demo))) > DEMO_K  # gold tasks mixed in
        finally:
            annotator.close()
    assert "registered 10 gold images" in demo.text


def test_demo_ends_with_a_first_agreement_report_that_renders(demo: DemoOutput) -> None:
    assert demo.text.splitlines()[-3] == f"agreement report: {demo.report_url}"
    headers = {"Authorization": f"Bearer {demo.api_key}"}
    page = httpx.get(demo.report_url, headers=headers)
    assert page.status_code == 200 and "No overlapping annotations yet" in page.text
    assert page.text.count('src="data:image/png;base64,') == 3
    report = httpx.get(demo.report_url.removesuffix(".html"), headers=headers).json()
    assert report["kind"] == "agreement" and report["sample_sizes"]["answers"] == 0
    assert report["stats"]["percent_agreement"] is None and report["annotators"] == []
    assert (report["verdict"], report["passed"]) == ("no_data", False)  # nothing to judge yet
    assert '<span class="verdict nodata">no data</span>' in page.text


def test_demo_ends_with_a_board_link_that_opens_without_a_key(demo: DemoOutput) -> None:
    assert demo.text.splitlines()[-2] == f"flow board:    {demo.board_url}"
    page = httpx.get(demo.board_url)
    assert page.status_code == 200 and 'id="board-data"' in page.text
    board = httpx.get(demo.board_url.replace("/board.html", "/board")).json()
    counts = {column["name"]: column["count"] for column in board["columns"]}
    assert counts["suggested"] == DEMO_K + gold_count(DEMO_K, QualitySettings().gold_share)
    assert counts["confirmed"] == board["columns"][3]["detail"]["seed"] > 0
    agreement = board["quality"]["agreement"]  # the first report: no answers yet
    assert (agreement["verdict"], agreement["passed"]) == ("no_data", False)
    assert "no answers yet" in agreement["reason"]


def project_id_of(demo: DemoOutput) -> int:
    match = re.search(r"/projects/(\d+)/", demo.project_url)
    assert match, demo.project_url
    return int(match.group(1))


@pytest.mark.browser
def test_annotator_sees_the_image_with_the_suggestion_preselected(
    demo: DemoOutput, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import sync_playwright

    studio = StudioClient(demo.studio_url, demo.token)
    request.addfinalizer(studio.close)
    first = min(studio.tasks(project_id_of(demo)), key=lambda t: t["id"])
    suggested = first["predictions"][0]["result"][0]["value"]["choices"][0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{demo.studio_url}/user/login/")
            page.fill("input[name=email]", demo.username)
            page.fill("input[name=password]", demo.password)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(demo.annotate_url)
            page.get_by_text("Labeling Instructions").wait_for(timeout=60_000)
            # The editor fetches the task's image from the service and shows it as a blob:
            # a 28x28 picture can only have come from the Fashion-MNIST file served there.
            page.wait_for_function(
                "() => [...document.querySelectorAll('img')].some(i => i.complete"
                " && (i.src.startsWith('blob:') || i.src.includes('/media/'))"
                " && i.naturalWidth === 28)",
                timeout=60_000,
            )
            checked = page.locator("input[type=radio]:checked")
            checked.first.wait_for(state="attached", timeout=60_000)
            page.screenshot(path=str(tmp_path / "annotator-view.png"))
            assert checked.count() == 1
            assert checked.first.get_attribute("name") == suggested
        finally:
            browser.close()


# Last in this module: it adds an annotation to the demo's project.
@pytest.mark.browser
def test_an_annotator_corrects_the_top_task_by_hotkey_and_the_service_has_it_in_seconds(
    demo: DemoOutput, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    email, password = demo.annotators[0]
    api = httpx.Client(
        base_url=demo.service_url, headers={"Authorization": f"Bearer {demo.admin_key}"}
    )
    (round_,) = api.get("/v1/rounds").json()["items"]
    top = min(round_["items"], key=lambda item: item["rank"])
    guide = load_guide(example_guide_path("fashion-mnist"))
    other = next(label for label in guide.labels if label.name != top["predicted_label"])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{demo.studio_url}/user/login/")
            page.fill("input[name=email]", email)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            with page.expect_response(NEXT_TASK, timeout=60_000) as served:
                page.goto(demo.annotate_url)  # "label all tasks": Label Studio's own queue
            assert served.value.json()["id"] == top["task_id"]  # the top-ranked task first
            page.get_by_text("Labeling Instructions").wait_for(timeout=60_000)
            instructions = page.locator(".lsf-modal-ls_visible")
            assert guide.labels[0].definition[:40] in instructions.inner_text()
            page.screenshot(path=str(tmp_path / "annotator-instructions.png"))
            instructions.get_by_role("button", name="Close modal").click()  # read, then closed
            instructions.wait_for(state="hidden", timeout=10_000)
            page.wait_for_function(SHOWS_THE_28_PIXEL_IMAGE, timeout=60_000)
            checked = page.locator("input[type=radio]:checked")
            checked.first.wait_for(state="attached", timeout=60_000)
            assert checked.first.get_attribute("name") == top["predicted_label"]

            page.keyboard.press(str(other.hotkey))  # the guide's hotkey for another label
            page.wait_for_function(
                f"() => document.querySelector('input[type=radio]:checked')?.name === "
                f"{other.name!r}",
                timeout=10_000,
            )
            page.screenshot(path=str(tmp_path / "annotator-correcting.png"))
            submitted = time.monotonic()
            page.get_by_test_id("bottombar-submit-button").click()
            stored = wait_for_annotation(api, top["image_id"], timeout_s=15)
            elapsed = time.monotonic() - submitted
        finally:
            browser.close()
            api.close()
    assert elapsed < 10, f"the service had the annotation only after {elapsed:.1f} s"
    assert (stored["label"], stored["status"]) == (other.name, "accepted")
    assert stored["task_id"] == top["task_id"]
    assert stored["shown_label"] == top["predicted_label"]  # the suggestion it replaced
    assert stored["shown_model_version"] == round_["model_version"]


# The label stream asks the Data Manager's `next_task` action for the user's next task.
NEXT_TASK = re.compile(r"/api/dm/actions\?id=next_task")
SHOWS_THE_28_PIXEL_IMAGE = (
    "() => [...document.querySelectorAll('img')].some(i => i.complete"
    " && (i.src.startsWith('blob:') || i.src.includes('/media/')) && i.naturalWidth === 28)"
)


def wait_for_annotation(api: httpx.Client, image_id: int, *, timeout_s: float) -> dict:
    """The image's first annotation in the service, polled until it arrives."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = api.get("/v1/annotations", params={"image_id": image_id}).json()["items"]
        if items:
            return dict(items[0])
        time.sleep(0.2)
    raise AssertionError(f"no annotation of image {image_id} reached the service")
