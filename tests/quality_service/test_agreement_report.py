"""The agreement report against a hand computation: two annotators, gold and ordinary tasks."""

from __future__ import annotations

import krippendorff
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from guides import Guide
from service.audit.tables import AuditEntry
from service.quality.data import latest_answers, rating_table
from tests.helpers import wait_for_job
from tests.quality_service.conftest import Answer, Receiver, add_images, store_answers

CAREFUL, CARELESS = 11, 12


def scenario(client: TestClient, guide: Guide) -> tuple[list[Answer], dict[int, str]]:
    """Both annotators label every gold task and six ordinary ones.

    CAREFUL answers every gold task right; CARELESS gets 2 of 10 right. On the ordinary
    tasks they agree on four and disagree on two. Every task showed CAREFUL's answer as the
    model's suggestion.
    """
    registered = client.post("/v1/gold/register").json()
    assert registered["registered"] == len(guide.gold_tasks) and not registered["skipped"]
    gold = _gold_images(client)
    names = guide.label_names
    answers: list[Answer] = []
    for n, (image_id, expected) in enumerate(sorted(gold.items())):
        wrong = names[(names.index(expected) + 1) % len(names)]
        careless = expected if n < 2 else wrong
        answers += [
            Answer(1000 + n, image_id, CAREFUL, expected, expected),
            Answer(1000 + n, image_id, CARELESS, careless, expected),
        ]
    ordinary = add_images(client, 6)
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 6), (5, 0)]  # class indices (careful, careless)
    for n, (image_id, (a, b)) in enumerate(zip(ordinary, pairs, strict=True)):
        answers += [
            Answer(2000 + n, image_id, CAREFUL, names[a], names[a]),
            Answer(2000 + n, image_id, CARELESS, names[b], names[a]),
        ]
    store_answers(client, guide, answers)
    return answers, gold


def _gold_images(client: TestClient) -> dict[int, str]:
    from service.quality.gold import gold_answers

    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        return gold_answers(session)


def run_report(client: TestClient) -> dict:
    response = client.post("/v1/reports/agreement")
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json())
    assert job["status"] == "succeeded", job
    body = client.get(f"/v1/reports/{job['result']['report_id']}")
    assert body.status_code == 200
    return {"job": job["result"], **body.json()}


def test_agreement_report_matches_a_hand_computation(
    client: TestClient, guide: Guide, receiver: Receiver
) -> None:
    answers, gold = scenario(client, guide)
    report = run_report(client)
    assert report["schema_version"] == "1.1" and report["kind"] == "agreement"
    assert report["guide_version"] == guide.version
    assert report["sample_sizes"]["answers"] == 32 and report["sample_sizes"]["tasks"] == 16
    # Percent agreement: they agree on 2 gold and 4 ordinary tasks of 16.
    assert report["stats"]["percent_agreement"] == 6 / 16
    names = guide.label_names
    pairs = {}
    for a in answers:
        pairs.setdefault(a.task_id, {})[a.annotator] = names.index(a.label)
    matrix = np.array([[p[CAREFUL], p[CARELESS]] for _, p in sorted(pairs.items())])
    expected_alpha = krippendorff.alpha(matrix.T.astype(float), level_of_measurement="nominal")
    assert abs(report["stats"]["krippendorff_alpha"] - expected_alpha) < 1e-9
    rows = {row["annotator"]: row for row in report["annotators"]}
    assert (rows[CAREFUL]["gold_correct"], rows[CAREFUL]["gold_attempted"]) == (10, 10)
    assert (rows[CARELESS]["gold_correct"], rows[CARELESS]["gold_attempted"]) == (2, 10)
    assert rows[CARELESS]["flagged"] and not rows[CAREFUL]["flagged"]
    # Majority of two: agreeing tasks take the shared label, ties the lower class index.
    consensus = {c["task_id"]: c["label"] for c in report["consensus"]}
    for task, by in pairs.items():
        assert consensus[task] == names[min(by.values())]
    # Suggestions showed CAREFUL's answers: all 16 kept by them, 6 by CARELESS.
    assert rows[CAREFUL]["suggestions_accepted"] == 16
    assert rows[CARELESS]["suggestions_accepted"] == 6
    assert report["acceptance_by_version"] == [
        {"key": "v1", "shown": 32, "accepted": 22, "rate": 22 / 32}
    ]
    assert not report["passed"]
    failed = [d for d in report["decisions"] if d["verdict"] == "fail"]
    assert {(d["scope"], d["subject"]) for d in failed if d["scope"] == "annotator"} == {
        ("annotator", str(CARELESS))
    }
    disagreeing = {str(t) for t, by in pairs.items() if len(set(by.values())) > 1}
    assert {d["subject"] for d in failed if d["scope"] == "task"} == disagreeing
    _audited(client, report)
    # The failure was announced to the configured webhook, Slack-style.
    assert report["job"]["notified"] is True
    (payload,) = receiver.received
    assert "Agreement check failed" in payload["text"] and payload["blocks"]
    assert f"annotator {CARELESS}" in payload["blocks"][1]["text"]["text"]


def _audited(client: TestClient, report: dict) -> None:
    with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        entries = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "quality.decision"))
        )
    assert len(entries) == len(report["decisions"])
    careless = [e for e in entries if e.subject_type == "annotator" and e.subject_id == "12"]
    assert careless[0].after["value"] == 0.2 and careless[0].after["verdict"] == "fail"


def test_reports_list_and_render_as_html_with_plots(client: TestClient, guide: Guide) -> None:
    scenario(client, guide)
    first, second = run_report(client), run_report(client)
    page = client.get("/v1/reports", params={"limit": 1})
    assert page.status_code == 200
    assert [item["id"] for item in page.json()["items"]] == [first["id"]]
    rest = client.get("/v1/reports", params={"limit": 1, "cursor": page.json()["next_cursor"]})
    assert [item["id"] for item in rest.json()["items"]] == [second["id"]]
    html = client.get(f"/v1/reports/{first['id']}.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.text.count('src="data:image/png;base64,') == 3
    assert "Krippendorff alpha" in html.text and f"v{guide.version}" in html.text
    assert client.get(f"/v1/reports/{first['id']}", params={"format": "html"}).text == html.text
    assert client.get("/v1/reports/999999").json()["error"]["code"] == "not_found"


def test_gold_images_never_train_and_never_join_the_pool(client: TestClient, guide: Guide) -> None:
    from service.learning.selection import candidate_images
    from service.learning.training import labeled_images
    from service.studio.resolve import resolve_labels

    answers, gold = scenario(client, guide)
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.sessions() as session:
        resolve_labels(session, {a.image_id for a in answers})  # gold images get labels too
        session.commit()
        labeled = {image.id for image in labeled_images(session, guide.label_names)}
        pool = {image.id for image in candidate_images(session)}
    assert not labeled & set(gold) and not pool & set(gold)
    assert labeled  # the ordinary tasks' labels do count


def test_live_alpha_equals_a_full_recompute_after_each_change(
    client: TestClient, guide: Guide
) -> None:
    from quality.agreement import krippendorff_alpha

    answers, _ = scenario(client, guide)
    context = client.app.state.context  # type: ignore[attr-defined]
    live = client.app.state.live_agreement  # type: ignore[attr-defined]

    def full() -> float:
        with context.sessions() as session:
            table = rating_table(latest_answers(session, guide), len(guide.labels))
        return krippendorff_alpha(table.ratings, table.n_classes).value

    assert live.alpha().value == full()
    third = Answer(2004, answers[-3].image_id, 13, guide.label_names[6])
    store_answers(client, guide, [third], start=500)
    before = live.updates
    context.annotations_changed({third.image_id})
    assert live.updates == before + 1  # one rating moved, nothing recomputed
    assert live.alpha().value == full()
    with context.sessions() as session:
        from service.core.orm import Annotation

        row = session.scalar(select(Annotation).where(Annotation.studio_annotation_id == 1))
        row.deleted = True
        session.commit()
        image = row.image_id
    context.annotations_changed({image})
    assert live.alpha().value == full()
    assert client.get("/v1/quality/live").json()["krippendorff_alpha"] == full()
