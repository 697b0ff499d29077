"""Drift reports after ingestion: the reference a guide version fixes, checks, alpha spending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.learning.heads import held_back
from service.quality.drift.schemas import UnsupportedSchemaVersion, read_drift_report
from tests.helpers import (
    ImagePool,
    all_items,
    api_client,
    image_ids_by_name,
    register_pool,
    wait_for_job,
)
from tests.quality_service.conftest import Receiver
from tests.quality_service.drift_sets import DriftSets, drift_sets, drift_settings

__all__ = ["drift_sets"]


def drift_jobs(client: TestClient) -> list[dict[str, Any]]:
    """Every finished drift report job, oldest first (waiting for the running ones)."""
    jobs = all_items(client, "/v1/jobs", kind="drift_check")
    return [
        wait_for_job(client, {"job_id": j["id"], "status_url": f"/v1/jobs/{j['id']}"}) for j in jobs
    ]


def register_and_report(client: TestClient, folder: Path) -> dict[str, Any]:
    """Register `folder`; the drift job its registration enqueued; its stored report."""
    before = len(drift_jobs(client))
    register_pool(client, str(folder))
    jobs = drift_jobs(client)
    assert len(jobs) == before + 1 and jobs[-1]["status"] == "succeeded", jobs[-1]
    report_id = jobs[-1]["result"]["report_id"]
    assert report_id is not None, jobs[-1]["result"]
    return dict(client.get(f"/v1/reports/{report_id}").json())


def seed_and_train(client: TestClient, pool: ImagePool) -> None:
    """60 seed labels from the pool's true classes, and a model trained on them."""
    names = client.get("/v1/guide").json()["labels"]
    ids = image_ids_by_name(client)
    labels = [
        {"image_id": ids[f"{i:05d}.png"], "label": names[pool.labels[i]]["name"]} for i in range(60)
    ]
    assert client.post("/v1/labels", json={"labels": labels}).status_code == 200
    trained = client.post("/v1/models/train")
    assert wait_for_job(client, trained.json())["status"] == "succeeded"


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["check"] == name)


def test_drift_reports_after_ingestion(
    tmp_path: Path, fashion_pool: ImagePool, drift_sets: DriftSets, receiver: Receiver
) -> None:
    settings = drift_settings(tmp_path, fashion_pool, drift_sets, receiver.url)
    with api_client(settings) as client:
        register_pool(client, str(fashion_pool.folder))
        first = drift_jobs(client)
        assert len(first) == 1 and first[0]["result"]["report_id"] is None
        assert "reference fixed" in first[0]["result"]["skipped"][0]
        assert first[0]["result"]["verdict"] == "no_data"  # the first check judges nothing
        assert "reference fixed" in first[0]["result"]["reason"]
        seed_and_train(client, fashion_pool)

        same = register_and_report(client, drift_sets.same)
        assert same["passed"] and same["verdict"] == "passed", same["checks"]
        assert same["sample_sizes"]["reference_images"] == 240
        assert same["sample_sizes"]["new_images"] == 40
        # Predictions are compared on reference images the head never learned from: not the
        # 60 labeled ones, nor those it pseudo-labeled.
        ids = image_ids_by_name(client)
        unlabeled = np.array([ids[f"{i:05d}.png"] for i in range(60, 240)])
        held = int(held_back(unlabeled).sum())
        assert 20 <= held < 180
        assert same["sample_sizes"]["reference_predictions"] == held
        for name in ("images", "predictions", "labels"):
            ran = check(same, name)
            assert ran["status"] == "ran" and ran["sequence_check"] == 1, ran
            assert ran["level"] == pytest.approx(0.05 / 5)
        assert check(same, "annotators")["status"] == "skipped"
        assert same["model_version"] and "alpha spending" in check(same, "images")["control"]
        assert "alpha / H" in same["false_alarm_control"]
        assert not receiver.received

        unseen = register_and_report(client, drift_sets.unseen)
        assert not unseen["passed"] and check(unseen, "images")["drifted"]
        assert unseen["verdict"] == "failed"
        assert check(unseen, "images")["sequence_check"] == 2
        assert check(unseen, "predictions")["sequence_check"] == 2
        assert check(unseen, "labels")["status"] == "skipped"  # no labels since the last one
        assert {n["name"] for n in unseen["novel_images"]} <= {
            p.name for p in drift_sets.unseen.iterdir()
        }
        assert len(unseen["novel_images"]) >= 20
        assert [p["report_id"] for p in unseen["history"]] == [same["id"], None]
        assert len(receiver.received) == 1
        assert "Drift detected" in receiver.received[0]["text"]
        assert f"/v1/reports/{unseen['id']}.html" in receiver.received[0]["text"]

        page = client.get(f"/v1/reports/{unseen['id']}.html")
        assert page.status_code == 200
        assert '<span class="verdict fail">failed</span>' in page.text
        assert "<td>skipped</td><td>n/a</td><td>n/a</td><td>n/a (no data)</td>" in page.text
        assert page.text.count("data:image/png;base64,") == 2  # p-values, projection
        for alt in ("p-values over time", "2-D projection of reference and new embeddings"):
            assert f'alt="{alt}"' in page.text
        assert "label histogram against priors" in client.get(f"/v1/reports/{same['id']}.html").text
        audit = all_items(client, "/v1/audit", action="quality.decision")
        assert any(e["after"].get("report_id") == unseen["id"] for e in audit)

    with api_client(settings) as client:  # a restarted service continues the sequences
        planted = register_and_report(client, drift_sets.planted)
        assert check(planted, "images")["sequence_check"] == 3
        listed = {n["name"] for n in planted["novel_images"]}
        assert set(drift_sets.planted_names) <= listed
        body = client.get(f"/v1/reports/{planted['id']}").json()
        assert [p["report_id"] for p in body["history"]] == [same["id"], unseen["id"], None]


def test_the_drift_report_schema_is_versioned(
    tmp_path: Path, fashion_pool: ImagePool, drift_sets: DriftSets
) -> None:
    settings = drift_settings(tmp_path, fashion_pool, drift_sets, None)
    with api_client(settings) as client:
        schema = client.get("/v1/drift/schema").json()
        assert schema["properties"]["schema_version"]["default"] == "1.1"
        assert {"checks", "reference_rule", "window", "sample_sizes"} <= set(schema["required"])
        register_pool(client, str(fashion_pool.folder))
        drift_jobs(client)
        report = register_and_report(client, drift_sets.same)
    body = {k: v for k, v in report.items() if k != "id"}
    assert read_drift_report(body).model_dump(mode="json") == body
    with pytest.raises(UnsupportedSchemaVersion):
        read_drift_report({**body, "schema_version": "2.0"})
    assert read_drift_report({**body, "schema_version": "1.2"}).schema_version == "1.2"
