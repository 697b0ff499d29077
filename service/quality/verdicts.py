"""Verdicts of checks and reports: judged, or `no_data` with the reason, never a blind pass.

A decision with nothing to judge (no answers, no task answered twice, no gold answer, no
suggestion shown) is `no_data`; one with data too thin to decide is `undecided`. A kind of
check takes its decisions together (`summarise`), and a report's verdict comes from the
judged checks only (`overall`): `failed` when one failed, `passed` when one passed and none
failed, `undecided` when every judged one is undecided, `no_data` when none had data.
Every consumer (the JSON, the pages, the board, the CLI, the alert) reads these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from service.quality.schemas import CheckVerdict, ReportVerdict

LABELS = {"passed": "passed", "failed": "failed", "undecided": "undecided", "no_data": "no data"}


def summarise(
    check: str, verdicts: Sequence[tuple[str, str | None]], *, no_data: str
) -> CheckVerdict:
    """One check from its decisions' `(verdict, reason)`; `no_data` is the reason when none
    of them had data (or there were none)."""
    seen = [verdict for verdict, _ in verdicts]
    for verdict in ("fail", "pass"):
        if verdict in seen:
            return CheckVerdict(check=check, verdict=verdict)  # type: ignore[arg-type]
    if "undecided" in seen:
        reasons = [reason for verdict, reason in verdicts if verdict == "undecided" and reason]
        return CheckVerdict(check=check, verdict="undecided", reason=_first(reasons))
    only = [reason for _, reason in verdicts if reason]
    reason = only[0] if len(verdicts) == 1 and only else no_data
    return CheckVerdict(check=check, verdict="no_data", reason=reason)


def overall(checks: Iterable[CheckVerdict]) -> tuple[ReportVerdict, str | None]:
    """The report's verdict and, when it is undecided or no_data, why."""
    checks = list(checks)
    seen = {check.verdict for check in checks}
    if "fail" in seen:
        return "failed", None
    if "pass" in seen:
        return "passed", None
    if "undecided" in seen:
        return "undecided", _reasons(c for c in checks if c.verdict == "undecided")
    return "no_data", _reasons(checks) or "no check had data to judge"


def drift_verdict(checks: Iterable[Any]) -> tuple[ReportVerdict, str | None]:
    """A drift report's verdict from its checks (`CheckOut`): failed when one drifted,
    passed when one ran, no_data when none had enough data to run."""
    checks = list(checks)
    if any(check.drifted for check in checks):
        return "failed", None
    if any(check.status == "ran" for check in checks):
        return "passed", None
    return "no_data", "; ".join(f"{c.check}: {c.reason}" for c in checks) or None


def verdict_of(body: dict[str, Any]) -> tuple[ReportVerdict, str | None]:
    """The verdict of a stored report body, including those stored before `verdict` existed.

    Schema 1.0 agreement bodies judged a check without data `undecided` on a sample of 0 and
    called the report passed: read those decisions as `no_data`.
    """
    if body.get("verdict"):
        return body["verdict"], body.get("reason")
    if body.get("kind") == "drift" or "decisions" not in body or "stats" not in body:
        return ("passed" if body.get("passed") else "failed"), None
    seen = {
        "no_data" if d["verdict"] == "undecided" and not d["sample_size"] else d["verdict"]
        for d in body["decisions"]
        if d["scope"] != "task"
    }
    if "fail" in seen or "pass" in seen:
        return ("failed" if "fail" in seen else "passed"), None
    if "undecided" in seen:
        return "undecided", "too little data to decide (see the decisions)"
    return "no_data", "no check had data to judge"


def checks_of(body: dict[str, Any]) -> list[CheckVerdict]:
    """The agreement report's per-check verdicts (empty for bodies stored before 1.1)."""
    return [CheckVerdict.model_validate(check) for check in body.get("checks", [])]


def label(verdict: str) -> str:
    """A verdict in words: `no_data` reads "no data"."""
    return LABELS.get(verdict, verdict.replace("_", " "))


def _reasons(checks: Iterable[CheckVerdict]) -> str | None:
    parts = [f"{c.check}: {c.reason}" for c in checks if c.reason]
    return "; ".join(parts) or None


def _first(reasons: list[str]) -> str | None:
    return reasons[0] if reasons else None
