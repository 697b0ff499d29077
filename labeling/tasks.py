"""Plain task and annotation records exchanged with Label Studio (no SDK import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labeling.studio_config import CHOICES_FIELD, IMAGE_FIELD


@dataclass(frozen=True)
class Suggestion:
    """The model's pre-label for one task."""

    label: str
    score: float
    model_version: str


@dataclass(frozen=True)
class TaskDraft:
    """One image to push: where the browser loads it and what the model suggests."""

    image_id: int
    image_url: str
    suggestion: Suggestion
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudioAnnotation:
    """One annotation as Label Studio holds it, reduced to what the service keeps."""

    annotation_id: int
    task_id: int
    image_id: int | None
    choices: list[str]
    completed_by: int | None
    was_cancelled: bool
    lead_time: float | None
    created_at: datetime | None
    updated_at: datetime | None
    parent_prediction: int | None


@dataclass(frozen=True)
class StudioTask:
    """One task with its identifying data and annotations."""

    task_id: int
    image_id: int | None
    meta: dict[str, Any]
    prediction_versions: list[str]
    annotations: list[StudioAnnotation]


def prediction_result(label: str) -> list[dict[str, Any]]:
    """The `result` list of a single-choice prediction or annotation."""
    return [
        {
            "from_name": CHOICES_FIELD,
            "to_name": IMAGE_FIELD,
            "type": "choices",
            "value": {"choices": [label]},
        }
    ]


def prediction_payload(suggestion: Suggestion) -> dict[str, Any]:
    """The JSON of one prediction: the suggested choice, its score and model version."""
    return {
        "model_version": suggestion.model_version,
        "score": float(suggestion.score),
        "result": prediction_result(suggestion.label),
    }


def task_payload(draft: TaskDraft) -> dict[str, Any]:
    """The import JSON of one task with its prediction."""
    return {
        "data": {IMAGE_FIELD: draft.image_url, "image_id": draft.image_id},
        "meta": dict(draft.meta),
        "predictions": [prediction_payload(draft.suggestion)],
    }


def choices_of(result: list[dict[str, Any]] | None) -> list[str]:
    """The chosen labels of an annotation result (empty when it holds no choice)."""
    chosen: list[str] = []
    for region in result or []:
        if region.get("type") == "choices" and region.get("from_name") == CHOICES_FIELD:
            chosen.extend(str(c) for c in (region.get("value") or {}).get("choices", []))
    return chosen
