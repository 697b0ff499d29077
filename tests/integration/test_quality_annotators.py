"""Two annotators label overlapped and gold tasks in a real Label Studio, each as themselves.

The careful annotator gives every image its true label. The careless one keeps the model's
suggestion on ordinary tasks and, on gold tasks, keeps a wrong suggestion or else picks a
wrong label. Their annotations reach the service by webhook (and a reconciliation pass);
the agreement report must match a hand computation from the labels submitted here.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import krippendorff
import numpy as np
import pytest
from sqlalchemy import select

from guides import Guide, example_guide_path, load_guide
from labeling.accounts import AnnotatorAccount
from labeling.local_server import LocalLabelStudio, free_loopback_port
from models.datasets import FASHION_MNIST_CLASSES
from service.api.app import create_app
from service.api.serving import served
from service.auth.keys import create_key
from service.context import ServiceContext
from service.core.orm import Annotation
from service.core.settings import QualitySettings, Settings
from service.demo import materialize_gold
from service.studio.annotators import provision_annotators
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, ImagePool, make_settings
from tests.integration.studio_http import StudioClient

pytestmark = pytest.mark.integration
K = 10
GOLD_SHARE = 0.5  # as many gold tasks as ordinary ones: every gold task of the guide
OVERLAP_SHARE = 0.5  # of the ordinary tasks; every gold task gets the overlap too
ANNOTATORS_PER_TASK = 2
SCREENSHOT_ENV = "ACTIVELABEL_WRITE_DOCS_SCREENSHOT"  # set to 1 to refresh the README's picture


@dataclass(frozen=True)
class Submitted:
    """One annotation made here: who gave which label on which task, and what they saw."""

    annotation_id: int
    task_id: int
    image_id: int
    annotator: int  # Label Studio user id
    label: str
    shown: str


@dataclass(frozen=True)
class Scenario:
    service: httpx.Client
    ctx: ServiceContext
    guide: Guide
    careful: AnnotatorAccount
    careless: AnnotatorAccount
    project_id: int
    tasks: list[dict[str, Any]]  # as Label Studio listed them before anyone annotated
    gold: dict[int, str]  # expected label by gold image id, read from the guide
    submitted: list[Submitted]
    report: dict[str, Any]


def guide_with_overlap(path: Path) -> Guide:
    """The example guide with a larger share of overlapped ordinary tasks."""
    text = example_guide_path("fashion-mnist").read_text()
    assert text.count("share_of_tasks: 0.1") == 1
    path.write_text(text.replace("share_of_tasks: 0.1", f"share_of_tasks: {OVERLAP_SHARE}"))
    return load_guide(path)


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[ServiceContext, httpx.Client]]:
    """The service on a loopback port (Label Studio delivers webhooks to it) and a client."""
    app = create_app(settings)
    port = int(settings.public_url.rsplit(":", 1)[1])
    with served(app, port):
        ctx: ServiceContext = app.state.context
        with ctx.sessions() as session:
            key = create_key(session, "quality test").token.get_secret_value()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=settings.public_url, headers=headers, timeout=60) as client:
            yield ctx, client


def finish(client: httpx.Client, started: httpx.Response) -> dict[str, Any]:
    """The result of the job that `started` (a 202 answer) enqueued, once it succeeded."""
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        job = client.get(started.json()["status_url"]).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return dict(job["result"] or {})
        time.sleep(0.2)
    raise AssertionError(f"job {started.json()} did not finish")


def listing(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 500, **params}
    while True:
        page = client.get(path, params=query).raise_for_status().json()
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]


def truth_by_image(
    client: httpx.Client, pool: ImagePool, gold_dir: Path, guide: Guide
) -> tuple[dict[int, str], dict[int, str]]:
    """True label by image id (pool images and gold images), and the gold images' labels."""
    expected = {task.image: task.expected_label for task in guide.gold_tasks}
    truth, gold = {}, {}
    for image in listing(client, "/v1/images"):
        path = Path(image["path"])
        if path.is_relative_to(gold_dir):
            gold[image["id"]] = expected[path.relative_to(gold_dir).as_posix()]
            truth[image["id"]] = gold[image["id"]]
        elif path.parent == pool.folder:
            truth[image["id"]] = FASHION_MNIST_CLASSES[pool.labels[int(path.stem)]]
    assert len(gold) == len(guide.gold_tasks)
    return truth, gold


def careless_label(truth: str, shown: str, *, on_gold: bool) -> str:
    """Keeps the suggestion, except a right one on a gold task, which it swaps for another."""
    if not on_gold or shown != truth:
        return shown
    names = FASHION_MNIST_CLASSES
    return names[(names.index(truth) + 1) % len(names)]


def annotate_all(
    tasks: list[dict[str, Any]],
    truth: dict[int, str],
    gold: dict[int, str],
    people: tuple[tuple[AnnotatorAccount, StudioClient], tuple[AnnotatorAccount, StudioClient]],
) -> list[Submitted]:
    """Overlapped tasks get both annotators, the others one each in turn."""
    submitted: list[Submitted] = []
    singles = 0
    for task in sorted(tasks, key=lambda t: t["id"]):
        (prediction,) = task["predictions"]
        shown = prediction["result"][0]["value"]["choices"][0]
        image_id = task["data"]["image_id"]
        if task["overlap"] >= ANNOTATORS_PER_TASK:
            who = list(people)
        else:
            who, singles = [people[singles % 2]], singles + 1
        for account, client in who:
            careful = account is people[0][0]
            label = (
                truth[image_id]
                if careful
                else careless_label(truth[image_id], shown, on_gold=image_id in gold)
            )
            # The labeling UI starts from the suggestion, so each answer names it as its parent.
            made = client.annotate(task["id"], label, parent_prediction=prediction["id"])
            assert made["completed_by"] == account.user_id
            submitted.append(
                Submitted(made["id"], task["id"], image_id, account.user_id, label, shown)
            )
    return submitted


def wait_for_rows(ctx: ServiceContext, ids: set[int], timeout_s: float = 60) -> int:
    """How many of `ids` the webhooks delivered before `timeout_s` (or all of them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with ctx.sessions() as session:
            stored = set(session.scalars(select(Annotation.studio_annotation_id)))
        if ids <= stored or time.monotonic() > deadline:
            return len(ids & stored)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
    fashion_pool: ImagePool,
    label_studio: LocalLabelStudio,
    studio: StudioClient,
) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("quality-annotators")
    guide = guide_with_overlap(root / "guide.yaml")
    gold_dir = root / "gold"
    assert materialize_gold(gold_dir, guide) == len(guide.gold_tasks)
    tag = uuid.uuid4().hex[:8]
    accounts = [
        {"email": f"careful-{tag}@example.com", "password": "careful-password-1"},
        {"email": f"careless-{tag}@example.com", "password": "careless-password-1"},
    ]
    with pytest.MonkeyPatch.context() as env:  # annotators come from the environment
        env.setenv("ACTIVELABEL_LABEL_STUDIO__ANNOTATORS", json.dumps(accounts))
        settings = make_settings(
            root,
            fashion_pool,
            label_studio={
                "url": label_studio.url,
                "api_key": label_studio.api_token,
                "project_title": f"quality {tag}",
                "webhook_secret": uuid.uuid4().hex,
                "reconcile_every_s": 0,
                "reconcile_overlap_s": 0.5,
            },
            guide_path=root / "guide.yaml",
            allowed_roots=[fashion_pool.root, gold_dir],
            public_url=f"http://127.0.0.1:{free_loopback_port()}",
            quality=QualitySettings(gold_dir=gold_dir, gold_share=GOLD_SHARE),
        )
    assert [a.email for a in settings.label_studio.annotators] == [a["email"] for a in accounts]
    with serve(settings) as (ctx, client):
        yield run_scenario(ctx, client, guide, fashion_pool, gold_dir, label_studio, studio)


def run_scenario(
    ctx: ServiceContext,
    client: httpx.Client,
    guide: Guide,
    pool: ImagePool,
    gold_dir: Path,
    label_studio: LocalLabelStudio,
    studio: StudioClient,
) -> Scenario:
    finish(client, client.post("/v1/images/register", json={"folder": str(pool.folder)}))
    gold_registered = client.post("/v1/gold/register").raise_for_status().json()
    assert gold_registered["registered"] == len(guide.gold_tasks), gold_registered
    truth, gold = truth_by_image(client, pool, gold_dir, guide)
    seeds: dict[int, str] = {}
    for image_id, label in truth.items():  # three known labels per class
        if image_id not in gold and sum(s == label for s in seeds.values()) < 3:
            seeds[image_id] = label
    body = [{"image_id": i, "label": label} for i, label in seeds.items()]
    client.post("/v1/labels", json={"labels": body}).raise_for_status()
    finish(client, client.post("/v1/rounds", json={"k": K}))

    careful, careless = provision_annotators(ctx, label_studio.set_password)
    project_id = studio.project_by_title(ctx.settings.label_studio.project_title)["id"]
    tasks = studio.tasks(project_id)
    clients = [StudioClient(label_studio.url, a.token) for a in (careful, careless)]
    try:
        submitted = annotate_all(
            tasks, truth, gold, ((careful, clients[0]), (careless, clients[1]))
        )
    finally:
        for annotator_client in clients:
            annotator_client.close()
    wait_for_rows(ctx, {s.annotation_id for s in submitted})
    finish(client, client.post("/v1/annotations/sync"))  # whatever no webhook delivered
    assert wait_for_rows(ctx, {s.annotation_id for s in submitted}, 0) == len(submitted)
    result = finish(client, client.post("/v1/reports/agreement"))
    report = client.get(f"/v1/reports/{result['report_id']}").raise_for_status().json()
    return Scenario(
        client, ctx, guide, careful, careless, project_id, tasks, gold, submitted, report
    )


def by_task(submitted: list[Submitted]) -> dict[int, dict[int, int]]:
    """Class index given per task and annotator."""
    table: dict[int, dict[int, int]] = {}
    for s in submitted:
        table.setdefault(s.task_id, {})[s.annotator] = FASHION_MNIST_CLASSES.index(s.label)
    return table


def test_agreement_report_matches_a_hand_computation(scenario: Scenario) -> None:
    report, submitted = scenario.report, scenario.submitted
    careful, careless = scenario.careful.user_id, scenario.careless.user_id
    assert report["guide_version"] == scenario.guide.version
    assert report["sample_sizes"]["answers"] == len(submitted)
    assert report["sample_sizes"]["tasks"] == len(scenario.tasks) == K + len(scenario.gold)
    assert report["sample_sizes"]["gold_answers"] == sum(
        s.image_id in scenario.gold for s in submitted
    )

    # Percent agreement: on tasks with both answers, the share where the two agree.
    ratings = by_task(submitted)
    pairs = [by for by in ratings.values() if len(by) == 2]
    assert len(pairs) == len(scenario.gold) + round(OVERLAP_SHARE * K)
    agreeing = sum(len(set(by.values())) == 1 for by in pairs)
    assert report["stats"]["percent_agreement"] == pytest.approx(agreeing / len(pairs), abs=1e-12)
    matrix = np.array(
        [[by.get(a, np.nan) for by in ratings.values()] for a in (careful, careless)], dtype=float
    )
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert report["stats"]["krippendorff_alpha"] == pytest.approx(expected_alpha, abs=1e-9)
    assert report["stats"]["alpha_units"] == len(pairs)

    # Gold accuracy per annotator, from the guide's expected labels.
    rows = {row["annotator"]: row for row in report["annotators"]}
    for annotator in (careful, careless):
        on_gold = [s for s in submitted if s.annotator == annotator and s.image_id in scenario.gold]
        correct = sum(s.label == scenario.gold[s.image_id] for s in on_gold)
        assert (rows[annotator]["gold_correct"], rows[annotator]["gold_attempted"]) == (
            correct,
            len(on_gold),
        )
        kept = sum(s.label == s.shown for s in submitted if s.annotator == annotator)
        assert rows[annotator]["suggestions_accepted"] == kept
    assert rows[careful]["gold_accuracy"] == 1.0 and rows[careless]["gold_accuracy"] == 0.0

    # Majority consensus: one answer or two that agree decide; a tie goes to the lower index.
    consensus = {c["task_id"]: c["label"] for c in report["consensus"]}
    assert consensus == {t: FASHION_MNIST_CLASSES[min(by.values())] for t, by in ratings.items()}

    # The careless annotator is flagged, the careful one is not; the batch fails.
    assert rows[careless]["flagged"] and not rows[careful]["flagged"]
    assert not report["passed"]
    failed = {(d["scope"], d["subject"]) for d in report["decisions"] if d["verdict"] == "fail"}
    assert ("annotator", str(careless)) in failed and ("annotator", str(careful)) not in failed
    disagreeing = {str(t) for t, by in ratings.items() if len(set(by.values())) > 1}
    assert {subject for scope, subject in failed if scope == "task"} == disagreeing


def test_every_decision_is_in_the_audit_trail(scenario: Scenario) -> None:
    report = scenario.report
    entries = [
        e
        for e in listing(scenario.service, "/v1/audit", action="quality.decision")
        if e["after"]["report_id"] == report["id"]
    ]
    assert len(entries) == len(report["decisions"])
    assert {(e["subject"]["type"], e["subject"]["id"]) for e in entries} == {
        (d["scope"], d["subject"]) for d in report["decisions"]
    }
    careless_id = ("annotator", str(scenario.careless.user_id))
    (careless,) = [e for e in entries if (e["subject"]["type"], e["subject"]["id"]) == careless_id]
    assert careless["after"]["check"] == "gold_accuracy"
    assert (careless["after"]["verdict"], careless["after"]["value"]) == ("fail", 0.0)
    assert careless["after"]["action"] == "flagged" and careless["actor"] == "quality"


def test_overlap_is_set_per_task_in_label_studio(scenario: Scenario, studio: StudioClient) -> None:
    overlap = {t["data"]["image_id"]: t["overlap"] for t in scenario.tasks}
    assert {overlap[image] for image in scenario.gold} == {ANNOTATORS_PER_TASK}
    ordinary = [n for image, n in overlap.items() if image not in scenario.gold]
    overlapped = round(OVERLAP_SHARE * K)
    assert sorted(ordinary) == [1] * (K - overlapped) + [ANNOTATORS_PER_TASK] * overlapped
    # Tasks both annotators disagreed on are left for review: no third annotator exists.
    failing = [
        d for d in scenario.report["decisions"] if d["scope"] == "task" and d["verdict"] == "fail"
    ]
    assert {d["action"] for d in failing} <= {"review: every annotator labeled it"}
    now = {t["data"]["image_id"]: t["overlap"] for t in studio.tasks(scenario.project_id)}
    assert now == overlap


def test_gold_tasks_look_like_any_other_task_to_annotators(
    scenario: Scenario, label_studio: LocalLabelStudio
) -> None:
    annotator = StudioClient(label_studio.url, scenario.careless.token)
    try:
        seen = annotator.tasks(scenario.project_id)
    finally:
        annotator.close()
    gold = [t for t in seen if t["data"]["image_id"] in scenario.gold]
    ordinary = [t for t in seen if t["data"]["image_id"] not in scenario.gold]
    assert len(gold) == len(scenario.gold) and len(ordinary) == K

    def shape(task: dict[str, Any]) -> tuple[Any, ...]:
        (prediction,) = task["predictions"]
        return (
            tuple(sorted(task["data"])),
            tuple(sorted(task["meta"])),
            tuple(sorted(type(v).__name__ for v in task["meta"].values())),
            task["data"]["image"].split("/v1/media/")[0],
            prediction["model_version"],
        )

    assert {shape(t) for t in gold} == {shape(t) for t in ordinary}
    references = [task.image for task in scenario.guide.gold_tasks]
    for task in gold:
        shown = json.dumps({"data": task["data"], "meta": task["meta"]}).lower()
        assert "gold" not in shown and not any(r in shown for r in references)
        image = httpx.get(task["data"]["image"])
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


@pytest.mark.browser
def test_html_report_renders_with_its_plots_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = f"{scenario.ctx.settings.public_url}/v1/reports/{scenario.report['id']}.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            key = scenario.service.headers["Authorization"]
            page.set_extra_http_headers({"Authorization": key})
            response = page.goto(url, wait_until="load")
            assert response is not None and response.status == 200
            plots = page.evaluate(
                "() => [...document.querySelectorAll('img, svg')].map(e => {"
                " const r = e.getBoundingClientRect();"
                " return {tag: e.tagName, complete: e.tagName !== 'IMG' || e.complete,"
                " natural: e.tagName === 'IMG' ? e.naturalWidth : r.width,"
                " width: r.width, height: r.height}; })"
            )
            assert len(plots) >= 3
            for plot in plots:
                assert plot["complete"] and plot["natural"] > 0, plot
                assert plot["width"] > 100 and plot["height"] > 100, plot
            assert page.get_by_text("Krippendorff alpha").count() >= 1
            assert page.locator("tr.flagged").count() == 1
            shot = tmp_path / "agreement-report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get(SCREENSHOT_ENV) == "1":
                docs = Path(__file__).resolve().parents[2] / "docs" / "agreement-report.png"
                page.screenshot(path=str(docs), full_page=True)
        finally:
            browser.close()
