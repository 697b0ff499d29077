"""Honest empty states: a check with nothing to judge says `no_data` and why, never passed.

Every consumer reads the same verdict: the report's JSON, its page, the list of reports, the
flow board (JSON and page), the CLI summary and the alert (none is sent for no data).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from guides import Guide
from service.quality.cli_report import summary
from service.quality.verdicts import verdict_of
from tests.helpers import wait_for_job
from tests.quality_service.conftest import Answer, Receiver, add_images, store_answers


def agreement_report(client: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the job's result, the stored report's JSON) of a new agreement report."""
    job = wait_for_job(client, client.post("/v1/reports/agreement").json())
    assert job["status"] == "succeeded", job
    report = client.get(f"/v1/reports/{job['result']['report_id']}").json()
    return job["result"], report


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report["checks"]}


def test_a_report_with_no_answers_yet_says_no_data_everywhere(
    client: TestClient, receiver: Receiver
) -> None:
    result, report = agreement_report(client)
    assert report["sample_sizes"]["answers"] == 0 and report["annotators"] == []
    assert report["stats"]["percent_agreement"] is None
    assert (report["verdict"], report["passed"]) == ("no_data", False)
    assert "agreement: no answers yet" in report["reason"]
    assert {c: v["verdict"] for c, v in checks(report).items()} == {
        "agreement": "no_data",
        "gold_accuracy": "no_data",
        "model_agreement": "no_data",
    }
    assert all(d["verdict"] == "no_data" and d["reason"] for d in report["decisions"])
    # The job, the list of reports and the alert: no data, no announcement.
    assert (result["verdict"], result["passed"], result["notified"]) == ("no_data", False, False)
    assert receiver.received == []
    listed = client.get("/v1/reports").json()["items"]
    assert [(r["id"], r["verdict"]) for r in listed] == [(report["id"], "no_data")]
    # The page says so in its verdict and explains the undefined statistics.
    page = client.get(f"/v1/reports/{report['id']}.html")
    assert page.status_code == 200 and '<span class="verdict nodata">no data</span>' in page.text
    assert "passed" not in page.text and "No overlapping annotations yet" in page.text
    assert "no annotator has answered a gold task yet" in page.text
    assert page.text.count('src="data:image/png;base64,') == 3
    # The board, as JSON and in the JSON its page paints from.
    board = client.get("/v1/board").json()["quality"]["agreement"]
    assert (board["report_id"], board["verdict"], board["passed"]) == (
        report["id"],
        "no_data",
        False,
    )
    assert board["reason"] == report["reason"] and board["checks"] == report["checks"]
    painted = board_data(client.get("/v1/board.html").text)["quality"]["agreement"]
    assert painted["verdict"] == "no_data"
    # The CLI's summary.
    text = summary(report)
    assert text.startswith(f"agreement report {report['id']}: NO DATA")
    assert "PASSED" not in text and "gold_accuracy    no data:" in text


def test_agreement_with_data_and_no_gold_judges_only_what_it_has(
    client: TestClient, guide: Guide
) -> None:
    """Two annotators agree on ten tasks of five classes; no gold task, no suggestion."""
    names = guide.label_names
    images = add_images(client, 10)
    answers = [
        Answer(3000 + n, image, annotator, names[n % 5])
        for n, image in enumerate(images)
        for annotator in (21, 22)
    ]
    store_answers(client, guide, answers)
    result, report = agreement_report(client)
    judged = checks(report)
    assert judged["agreement"]["verdict"] == "pass"
    assert judged["gold_accuracy"] == {
        "check": "gold_accuracy",
        "verdict": "no_data",
        "reason": "no annotator has answered a gold task yet",
    }
    assert judged["model_agreement"]["verdict"] == "no_data"
    assert (report["verdict"], report["reason"], report["passed"]) == ("passed", None, True)
    gold = [d for d in report["decisions"] if d["check"] == "gold_accuracy"]
    assert {(d["subject"], d["verdict"]) for d in gold} == {("21", "no_data"), ("22", "no_data")}
    assert all(d["reason"] == f"annotator {d['subject']} answered no gold task" for d in gold)
    board = client.get("/v1/board").json()["quality"]["agreement"]
    assert board["verdict"] == "passed" and board["gold_accuracy"] is None
    assert {c["check"]: c["verdict"] for c in board["checks"]}["gold_accuracy"] == "no_data"
    page = client.get(f"/v1/reports/{report['id']}.html").text
    assert '<span class="verdict pass">passed</span>' in page
    assert "no annotator has answered a gold task yet" in page


def test_too_few_shared_tasks_are_undecided_with_the_reason(
    client: TestClient, guide: Guide
) -> None:
    images = add_images(client, 3)
    names = guide.label_names
    answers = [
        Answer(4000 + n, image, annotator, names[n])
        for n, image in enumerate(images)
        for annotator in (31, 32)
    ]
    store_answers(client, guide, answers)
    _, report = agreement_report(client)
    assert report["verdict"] == "undecided" and not report["passed"]
    assert report["reason"] == (
        "agreement: 3 tasks answered by two annotators or more; alpha is judged from 10"
    )


def test_reports_stored_before_verdicts_existed_read_honestly() -> None:
    """Schema 1.0 called a report with nothing to judge passed; it now reads as no data."""
    empty = {
        "schema_version": "1.0",
        "kind": "agreement",
        "passed": True,
        "stats": {},
        "decisions": [
            {"scope": "batch", "check": "agreement", "verdict": "undecided", "sample_size": 0},
            {
                "scope": "batch",
                "check": "model_agreement",
                "verdict": "undecided",
                "sample_size": 0,
            },
        ],
    }
    assert verdict_of(empty) == ("no_data", "no check had data to judge")
    thin = {**empty, "decisions": [{**empty["decisions"][0], "sample_size": 3}]}
    assert verdict_of(thin)[0] == "undecided"
    failed = {**empty, "passed": False}
    failed["decisions"] = [{**empty["decisions"][0], "verdict": "fail", "sample_size": 12}]
    assert verdict_of(failed) == ("failed", None)
    assert verdict_of({"kind": "drift", "passed": True}) == ("passed", None)


def board_data(page: str) -> dict[str, Any]:
    start = page.index('<script id="board-data" type="application/json">') + len(
        '<script id="board-data" type="application/json">'
    )
    return json.loads(page[start : page.index("</script>", start)])  # type: ignore[no-any-return]
