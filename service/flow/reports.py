"""The latest stored quality reports, as the board needs them (each parsed once per process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.flow.memo import Memo, database_of
from service.flow.schemas import AgreementSummary, DriftSummary
from service.quality.tables import QualityReport
from service.quality.verdicts import checks_of, verdict_of
from service.studio.intake import as_utc

_PARSED = Memo(size=32)


@dataclass(frozen=True)
class TaskVerdicts:
    """What the latest agreement report decided about tasks (empty before any report)."""

    at: datetime | None = None
    raised: dict[int, int] = field(default_factory=dict)  # task -> overlap it was raised to
    review: frozenset[int] = frozenset()  # failed with every annotator in: left to a person
    passed: frozenset[int] = frozenset()
    flagged_annotators: frozenset[int] = frozenset()
    emails: dict[int, str] = field(default_factory=dict)  # annotator -> email, where known


def _latest(session: Session, kind: str) -> tuple[int, datetime] | None:
    row = session.execute(
        select(QualityReport.id, QualityReport.created_at)
        .where(QualityReport.kind == kind)
        .order_by(QualityReport.id.desc())
        .limit(1)
    ).first()
    return (row[0], as_utc(row[1]) or row[1]) if row else None


def _body(session: Session, report_id: int, created: datetime) -> dict[str, Any]:
    key = (database_of(session), report_id, created.isoformat())
    row = _PARSED.get(key, lambda: session.get(QualityReport, report_id))
    assert row is not None
    return dict(row.body)


def verdicts_of(body: dict[str, Any], at: datetime) -> TaskVerdicts:
    """Task decisions and flagged annotators of one agreement report body."""
    raised: dict[int, int] = {}
    review, passed = set(), set()
    for decision in body.get("decisions", []):
        if decision["scope"] != "task":
            continue
        task = int(decision["subject"])
        action = decision.get("action") or ""
        if decision["verdict"] == "pass":
            passed.add(task)
        elif action.startswith("overlap raised"):
            raised[task] = int(decision["sample_size"]) + 1
        elif action.startswith("review"):
            review.add(task)
    people = body["annotators"]
    flagged = frozenset(int(row["annotator"]) for row in people if row["flagged"])
    emails = {int(row["annotator"]): row["email"] for row in people if row.get("email")}
    return TaskVerdicts(at, raised, frozenset(review), frozenset(passed), flagged, emails)


def latest_agreement(
    session: Session, base_url: str
) -> tuple[TaskVerdicts, AgreementSummary | None]:
    """The latest agreement report's task verdicts and summary (empty, None before any)."""
    found = _latest(session, "agreement")
    if found is None:
        return TaskVerdicts(), None
    report_id, created = found
    body = _body(session, report_id, created)
    people = body["annotators"]
    attempted = sum(int(p["gold_attempted"]) for p in people)
    correct = sum(int(p["gold_correct"]) for p in people)
    verdict, reason = verdict_of(body)
    summary = AgreementSummary(
        report_id=report_id,
        created_at=created,
        passed=verdict == "passed",
        verdict=verdict,
        reason=reason,
        checks=checks_of(body),
        krippendorff_alpha=body["stats"]["krippendorff_alpha"],
        percent_agreement=body["stats"]["percent_agreement"],
        gold_accuracy=correct / attempted if attempted else None,
        flagged_annotators=sorted(int(p["annotator"]) for p in people if p["flagged"]),
        failed_checks=sorted(
            {
                f"{d['scope']} {d['subject']}: {d['check']}"
                for d in body["decisions"]
                if d["verdict"] == "fail" and d["scope"] != "task"
            }
        ),
        url=report_url(base_url, report_id),
    )
    return verdicts_of(body, created), summary


def latest_drift(session: Session, base_url: str) -> DriftSummary | None:
    """The latest drift report's verdict and the checks that found a shift."""
    found = _latest(session, "drift")
    if found is None:
        return None
    report_id, created = found
    body = _body(session, report_id, created)
    verdict, reason = verdict_of(body)
    return DriftSummary(
        report_id=report_id,
        created_at=created,
        passed=verdict == "passed",
        verdict=verdict,
        reason=reason,
        drifted_checks=[c["check"] for c in body.get("checks", []) if c.get("drifted")],
        url=report_url(base_url, report_id),
    )


def report_url(base_url: str, report_id: int) -> str:
    return f"{base_url.rstrip('/')}/v1/reports/{report_id}.html"
