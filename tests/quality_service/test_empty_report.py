"""The first agreement report, before anyone has annotated: a page that says so, not an error."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import wait_for_job


def test_a_report_with_no_answers_yet_renders_and_says_why_it_is_empty(
    client: TestClient,
) -> None:
    job = wait_for_job(client, client.post("/v1/reports/agreement").json())
    assert job["status"] == "succeeded", job
    report = client.get(f"/v1/reports/{job['result']['report_id']}").json()
    assert report["sample_sizes"]["answers"] == 0 and report["annotators"] == []
    assert report["stats"]["percent_agreement"] is None
    assert {d["verdict"] for d in report["decisions"]} == {"undecided"}
    page = client.get(f"/v1/reports/{report['id']}.html")
    assert page.status_code == 200 and "No overlapping annotations yet" in page.text
    assert page.text.count('src="data:image/png;base64,') == 3
