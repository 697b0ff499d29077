"""The flow board's JSON (`GET /v1/board`): columns, WIP, timing, bottleneck, quality.

Times are UTC; ages and durations are seconds. `schema_version` names this schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.quality.schemas import CheckVerdict, ReportVerdict

BOARD_SCHEMA_VERSION = "1"
ColumnName = Literal["unlabeled", "suggested", "in_review", "confirmed", "flagged"]
StageName = Literal["push", "annotate", "review"]


class OldestItem(BaseModel):
    """The item that has been in its column longest."""

    image_id: int
    task_id: int | None = Field(description="the Label Studio task, once pushed")
    since: datetime = Field(description="when it entered the column")
    age_s: float
    url: str | None = Field(description="the task in Label Studio, or the image itself")


class Column(BaseModel):
    name: ColumnName
    count: int
    detail: dict[str, int] = Field(description="how the count splits, by reason or source")
    oldest: OldestItem | None


class AnnotatorWip(BaseModel):
    """One annotator's work in progress: items they answered that are not final yet."""

    annotator: int = Field(description="Label Studio user id")
    email: str | None
    in_progress: int = Field(description="answered items still in review or flagged")
    answers_recent: int = Field(description="answers within the active window")
    last_answer_at: datetime | None
    flagged: bool = Field(description="flagged by the latest agreement report")
    over_limit: bool


class Wip(BaseModel):
    limit_per_annotator: int | None = Field(description="the guide's flow.wip_per_annotator")
    active_window_s: float
    active_annotators: int
    open_tasks: int = Field(description="pushed tasks waiting for their first answer")
    queue_limit: int | None = Field(description="limit per annotator x active annotators")
    queue_over_limit: bool
    annotators: list[AnnotatorWip]


class Bucket(BaseModel):
    start: datetime
    confirmed: int
    lead_time_median_s: float | None


class Timing(BaseModel):
    """Lead time (push to confirmed) and throughput (confirmed items) over time."""

    lead_time_median_s: float | None = Field(description="over the daily series' window")
    lead_time_p90_s: float | None
    throughput_last_hour: int
    throughput_last_day: int
    hourly: list[Bucket] = Field(description="the last 24 hours, oldest first")
    daily: list[Bucket] = Field(description="the last 14 days, oldest first")


class Stage(BaseModel):
    stage: StageName
    queue: int = Field(description="items waiting in the stage now")
    done_recent: int = Field(description="items that left it within the recent window")
    wait_s: float | None = Field(description="queue / recent rate (Little's law); None: stalled")
    stalled: bool = Field(description="a queue with nothing done in the recent window")


class Bottleneck(BaseModel):
    stage: StageName | None = Field(description="None while every queue is empty")
    rule: str
    recent_window_s: float
    stages: list[Stage]


class AgreementSummary(BaseModel):
    report_id: int
    created_at: datetime
    passed: bool = Field(description="true only when `verdict` is `passed`")
    verdict: ReportVerdict = Field(description="no_data: no check had anything to judge")
    reason: str | None = Field(description="why, when undecided or no_data")
    checks: list[CheckVerdict] = Field(
        description="agreement, gold accuracy and model agreement, each judged or no_data"
    )
    krippendorff_alpha: float | None
    percent_agreement: float | None
    gold_accuracy: float | None = Field(description="over every annotator's gold answers")
    flagged_annotators: list[int]
    failed_checks: list[str]
    url: str


class DriftSummary(BaseModel):
    report_id: int
    created_at: datetime
    passed: bool = Field(description="true only when `verdict` is `passed`")
    verdict: ReportVerdict
    reason: str | None
    drifted_checks: list[str]
    url: str


class Quality(BaseModel):
    agreement: AgreementSummary | None
    drift: DriftSummary | None


class Board(BaseModel):
    """The labeling flow now: one column per stage, WIP, timing, bottleneck and quality."""

    schema_version: str = BOARD_SCHEMA_VERSION
    generated_at: datetime
    guide_version: str
    columns: list[Column]
    wip: Wip
    timing: Timing
    bottleneck: Bottleneck
    quality: Quality
