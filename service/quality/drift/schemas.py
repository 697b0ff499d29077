"""The versioned JSON schema of drift reports and of a pipeline batch's verdict (pydantic).

`DRIFT_SCHEMA_VERSION` is `major.minor`: a minor version only adds fields, a major one
changes their meaning. `read_drift_report` refuses a body of another major version. 1.1
added the report's and the batch's `verdict` and `reason` (a report is stored only when a
check ran, so its verdict is `passed` or `failed`; a skipped check had no data and counts
for neither).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.quality.schemas import DecisionOut, ReportHeader, ReportVerdict

DRIFT_SCHEMA_VERSION = "1.1"
CheckKind = Literal["images", "predictions", "labels", "annotators"]


class CheckOut(BaseModel):
    """One drift check: its p-value, the level it was held to and the verdict, or why skipped."""

    check: CheckKind
    status: Literal["ran", "skipped"]
    reason: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    level: float | None = Field(default=None, description="the level p was compared with")
    drifted: bool = False
    n_reference: int = 0
    n_new: int = 0
    control: str = ""
    sequence_check: int | None = Field(
        default=None, description="this check's number t in its alpha-spending sequence"
    )
    components: dict[str, float | None] = Field(
        default_factory=dict, description="p-values of the tests combined into this check"
    )


class NovelImage(BaseModel):
    """A new image far from every reference image (kept by Benjamini-Hochberg)."""

    index: int  # position in the new sample
    image_id: int | None = None
    name: str | None = None
    distance: float  # cosine distance to the nearest reference image
    p_value: float  # conformal p-value


class AnnotatorShiftOut(BaseModel):
    annotator: str
    n_labels: int
    p_value: float | None
    adjusted_p_value: float | None
    drifted: bool


class LabelCounts(BaseModel):
    labels: list[str]
    observed: list[int]
    priors: list[float] | None
    impossible: list[str] = Field(default_factory=list)


class Projection(BaseModel):
    """Both samples on the pooled sample's first two principal components (subsampled)."""

    reference: list[tuple[float, float]]
    new: list[tuple[float, float]]
    explained_variance: list[float]


class HistoryPoint(BaseModel):
    report_id: int | None  # None: the report this point belongs to
    created_at: datetime
    p_values: dict[str, float | None]
    levels: dict[str, float | None]


class DriftReport(ReportHeader):
    schema_version: str = DRIFT_SCHEMA_VERSION
    kind: Literal["drift"] = "drift"
    trigger: str  # registration | on_demand
    alpha: float  # the guide's drift significance
    reference_rule: str
    reference_until: datetime
    checks: list[CheckOut]
    novel_images: list[NovelImage]
    label_counts: LabelCounts | None
    annotators: list[AnnotatorShiftOut]
    projection: Projection | None
    history: list[HistoryPoint]
    decisions: list[DecisionOut]


class SkippedFile(BaseModel):
    name: str
    code: str
    reason: str


class BatchVerdict(BaseModel):
    """A pipeline's batch checked against the reference before it joins the pool."""

    schema_version: str = DRIFT_SCHEMA_VERSION
    passed: bool
    verdict: ReportVerdict
    reason: str | None = None
    guide_name: str
    guide_version: str
    guide_fingerprint: str
    model_version: str | None
    alpha: float
    reference_rule: str
    reference_until: datetime
    false_alarm_control: str
    sample_sizes: dict[str, int]
    checks: list[CheckOut]
    novel_images: list[NovelImage]
    skipped_files: list[SkippedFile]


class UnsupportedSchemaVersion(ValueError):
    """A stored report of a major schema version this code does not read."""


def read_drift_report(body: dict[str, Any]) -> DriftReport:
    """A stored drift report body as a `DriftReport`; its major version must be ours."""
    version = str(body.get("schema_version", ""))
    if version.split(".")[0] != DRIFT_SCHEMA_VERSION.split(".")[0]:
        raise UnsupportedSchemaVersion(
            f"expected a drift report of schema {DRIFT_SCHEMA_VERSION.split('.')[0]}.x, "
            f"got {version or 'none'}"
        )
    return DriftReport.model_validate(body)
