"""The versioned JSON schema of quality reports (`schema_version`), as pydantic models.

Numbers that are undefined (an agreement with one class only, a rate with no trials) are
`null`, never NaN. Every report names the guide and model versions, its data window and
sample sizes, and how repeated checks are kept from raising false alarms. A check with
nothing to judge says `no_data` and why (`reason`), never `pass`; the report's `verdict`
comes from the judged checks only (`verdicts.py`). Version 1.1 added `verdict`, `reason`,
the agreement report's `checks` and the `no_data` verdict of a decision.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

SCHEMA_VERSION = "1.1"
ReportVerdict = Literal["passed", "failed", "undecided", "no_data"]
CheckVerdictName = Literal["pass", "fail", "undecided", "no_data"]


def num(value: float | None) -> float | None:
    """A JSON-safe float: None for NaN, infinities and None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Window(BaseModel):
    start: datetime | None = None
    end: datetime | None = None


class ReportHeader(BaseModel):
    schema_version: str = SCHEMA_VERSION
    created_at: datetime
    guide_name: str
    guide_version: str
    guide_fingerprint: str
    model_version: str | None
    window: Window
    sample_sizes: dict[str, int]
    false_alarm_control: str
    passed: bool = Field(description="true only when `verdict` is `passed`")
    verdict: ReportVerdict = Field(
        description="failed: a judged check failed; passed: one passed and none failed; "
        "undecided: the judged checks could not decide; no_data: no check had data"
    )
    reason: str | None = Field(default=None, description="why, when undecided or no_data")

    @model_validator(mode="before")
    @classmethod
    def _verdict_of_1_0(cls, data: Any) -> Any:
        """A body stored before `verdict` existed reads as passed or failed."""
        if isinstance(data, dict) and "verdict" not in data and "passed" in data:
            return {**data, "verdict": "passed" if data["passed"] else "failed"}
        return data


class DecisionOut(BaseModel):
    scope: Literal["task", "annotator", "batch"]
    subject: str
    check: str
    verdict: CheckVerdictName
    value: float | None
    threshold: float
    sample_size: int
    lower: float | None = None
    upper: float | None = None
    action: str | None = None  # what the service did about a failure
    reason: str | None = None  # why no_data or undecided


class CheckVerdict(BaseModel):
    """One kind of check over the whole report: its decisions taken together."""

    check: str
    verdict: CheckVerdictName
    reason: str | None = None


class PairKappa(BaseModel):
    first: int
    second: int
    kappa: float | None
    shared_tasks: int


class AgreementStats(BaseModel):
    percent_agreement: float | None
    krippendorff_alpha: float | None
    alpha_units: int
    fleiss_kappa: float | None
    fleiss_units: int
    fleiss_raters: int
    cohen_mean: float | None
    cohen: list[PairKappa]


class AnnotatorRow(BaseModel):
    annotator: int  # Label Studio user id
    email: str | None = None
    answers: int
    gold_correct: int
    gold_attempted: int
    gold_accuracy: float | None
    consensus_agreed: int
    consensus_compared: int
    consensus_agreement: float | None
    suggestions_shown: int
    suggestions_accepted: int
    wrong_suggestions_shown: int
    wrong_suggestions_accepted: int
    anchoring_flagged: bool
    flagged: bool
    confusion: list[list[int]] = Field(description="[consensus][given] counts")


class ConsensusTask(BaseModel):
    task_id: int
    image_id: int
    label: str
    support: float | None
    tied: bool
    ratings: int


class Acceptance(BaseModel):
    key: str  # a model version or a class name
    shown: int
    accepted: int
    rate: float | None


class AgreementReport(ReportHeader):
    kind: Literal["agreement"] = "agreement"
    labels: list[str]
    stats: AgreementStats
    consensus_method: Literal["majority", "dawid_skene"]
    consensus: list[ConsensusTask]
    annotators: list[AnnotatorRow]
    acceptance_by_version: list[Acceptance]
    acceptance_by_class: list[Acceptance]
    label_counts: dict[str, int]  # consensus labels of tasks
    priors: dict[str, float] | None
    checks: list[CheckVerdict] = Field(
        default_factory=list, description="agreement, gold_accuracy and model_agreement"
    )
    decisions: list[DecisionOut]
