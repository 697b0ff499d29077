"""Plain task and annotation records exchanged with Label Studio (no SDK import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labeling.studio_config import CHOICES_FIELD, IMAGE_FIELD

# The key in a task's `meta` holding the sha256 of its image's bytes: one task per content.
CONTENT_HASH_KEY = "content_sha256"


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
class StudioPrediction:
    """One prediction attached to a task: what an annotator may have been shown."""

    prediction_id: int
    model_version: str | None
    label: str | None  # the single suggested choice; None when it holds none


@dataclass(frozen=True)
class StudioTask:
    """One task with its identifying data, predictions and annotations."""

    task_id: int
    image_id: int | None
    meta: dict[str, Any]
    prediction_versions: list[str]
    annotations: list[StudioAnnotation]
    predictions: list[StudioPrediction] = field(default_factory=list)
    updated_at: datetime | None = None
    has_draft: bool = False  # an annotator saved unsubmitted work on it
    cancelled: int = 0  # skips


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


def task_data(image_id: int, image_url: str) -> dict[str, Any]:
    """A task's `data`: the image URL the labeling interface shows, and the service's image id."""
    return {IMAGE_FIELD: image_url, "image_id": image_id}


def task_payload(draft: TaskDraft) -> dict[str, Any]:
    """The import JSON of one task with its prediction."""
    return {
        "data": task_data(draft.image_id, draft.image_url),
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


def parse_time(value: datetime | str | None) -> datetime | None:
    """A Label Studio timestamp (ISO text or datetime) as an aware datetime, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def int_or_none(value: Any) -> int | None:
    """`value` as an int, or None when it is missing or not a whole number."""
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def annotation_record(item: dict[str, Any], task_id: int, image_id: int | None) -> StudioAnnotation:
    """One annotation's JSON (as the API or a webhook sends it) as a plain record."""
    lead_time = item.get("lead_time")
    return StudioAnnotation(
        annotation_id=int(item["id"]),
        task_id=task_id,
        image_id=image_id,
        choices=choices_of(item.get("result")),
        completed_by=_user_id(item.get("completed_by")),
        was_cancelled=bool(item.get("was_cancelled")),
        lead_time=float(lead_time) if isinstance(lead_time, int | float) else None,
        created_at=parse_time(item.get("created_at")),
        updated_at=parse_time(item.get("updated_at")),
        parent_prediction=int_or_none(item.get("parent_prediction")),
    )


def prediction_record(item: dict[str, Any]) -> StudioPrediction:
    """One prediction's JSON as a plain record (its single suggested choice, if any)."""
    chosen = choices_of(item.get("result"))
    version = item.get("model_version")
    return StudioPrediction(
        prediction_id=int(item["id"]),
        model_version=str(version) if version not in (None, "") else None,
        label=chosen[0] if len(chosen) == 1 else None,
    )


def _user_id(value: Any) -> int | None:
    """`completed_by` is an id, or a user object in some payloads."""
    if isinstance(value, dict):
        return int_or_none(value.get("id"))
    return int_or_none(value)


def studio_task(task: Any) -> StudioTask:
    """A task as the SDK returns it (its fields as attributes) as a plain record."""
    data = task.data or {}
    image_id = int_or_none(data.get("image_id"))
    task_id = int(task.id)
    annotations = [annotation_record(a, task_id, image_id) for a in _as_dicts(task.annotations)]
    predictions = [prediction_record(p) for p in _as_dicts(task.predictions) if "id" in p]
    versions = [str(p.get("model_version")) for p in _as_dicts(task.predictions)]
    return StudioTask(
        task_id=task_id,
        image_id=image_id,
        meta=dict(task.meta or {}),
        prediction_versions=versions,
        annotations=annotations,
        predictions=predictions,
        updated_at=parse_time(getattr(task, "updated_at", None)),
        has_draft=bool(getattr(task, "draft_exists", None) or getattr(task, "drafts", None)),
        cancelled=int(getattr(task, "cancelled_annotations", None) or 0),
    )


def _as_dicts(items: Any) -> list[dict[str, Any]]:
    return [i if isinstance(i, dict) else i.model_dump() for i in items or []]
