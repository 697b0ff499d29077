"""Reading annotations back from Label Studio: idempotent, and no annotation is dropped."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from guides import Guide
from labeling.studio_config import project_spec
from labeling.tasks import StudioAnnotation
from service.context import ServiceContext
from service.core.orm import Annotation, Image, RoundItem, utcnow


@dataclass(frozen=True)
class AnnotationProblem:
    annotation_id: int
    task_id: int
    code: str
    message: str


@dataclass
class SyncReport:
    project_id: int
    tasks_seen: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    cancelled: int = 0
    labeled_images: int = 0  # images whose label this sync set or confirmed (changed annotations)
    problems: list[AnnotationProblem] = field(default_factory=list)


def judge(annotation: StudioAnnotation, guide: Guide) -> tuple[str, str | None, str | None]:
    """(status, label, problem) of one annotation against the guide."""
    if annotation.was_cancelled:
        return "cancelled", None, None
    if annotation.image_id is None:
        return "rejected", None, "unknown_task: the task names no image of this service"
    if len(annotation.choices) != 1:
        return "rejected", None, f"choice_count: expected one choice, got {annotation.choices}"
    label = annotation.choices[0]
    if not guide.has_label(label):
        return "rejected", None, f"unknown_label: {label!r} is not a label of the guide"
    return "accepted", label, None


def sync_annotations(ctx: ServiceContext) -> SyncReport:
    """Store every annotation of the project (new or edited), then update image labels."""
    with ctx.sessions() as session:
        project_id = ctx.gateway.ensure_project(
            project_spec(ctx.guide, title=ctx.settings.label_studio.project_title)
        )
        tasks = ctx.gateway.list_tasks(project_id)
        report = SyncReport(project_id=project_id, tasks_seen=len(tasks))
        suggestions = _suggestions_by_task(session, [t.task_id for t in tasks])
        touched: set[int] = set()
        for task in tasks:
            for annotation in task.annotations:
                changed = _store(
                    session, annotation, ctx.guide, suggestions.get(task.task_id), report
                )
                if changed and task.image_id is not None:
                    touched.add(task.image_id)
        report.labeled_images = _resolve_labels(session, touched)
        session.commit()
        return report


def _store(
    session: Session,
    annotation: StudioAnnotation,
    guide: Guide,
    suggestion: tuple[str, str] | None,
    report: SyncReport,
) -> bool:
    """Store or update one annotation; True when it is new or changed."""
    status, label, problem = judge(annotation, guide)
    row = session.scalar(
        select(Annotation).where(Annotation.studio_annotation_id == annotation.annotation_id)
    )
    if row is not None and (row.status, row.label, row.problem) == (status, label, problem):
        report.unchanged += 1
        return False
    suggested_label, model_version = suggestion or (None, None)
    values = {
        "task_id": annotation.task_id,
        "image_id": _known_image(session, annotation.image_id),
        "status": status,
        "label": label,
        "problem": problem,
        "annotator": annotation.completed_by,
        "lead_time": annotation.lead_time,
        "annotated_at": _as_datetime(annotation.updated_at or annotation.created_at),
        "suggested_label": suggested_label,
        "model_version": model_version,
        "synced_at": utcnow(),
    }
    if row is None:
        session.add(Annotation(studio_annotation_id=annotation.annotation_id, **values))
        report.new += 1
    else:
        for name, value in values.items():
            setattr(row, name, value)
        report.updated += 1
    if status == "cancelled":
        report.cancelled += 1
    if problem:
        code, _, message = problem.partition(": ")
        report.problems.append(
            AnnotationProblem(annotation.annotation_id, annotation.task_id, code, message)
        )
    return True


def _known_image(session: Session, image_id: int | None) -> int | None:
    return image_id if image_id is not None and session.get(Image, image_id) else None


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _suggestions_by_task(session: Session, task_ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = session.execute(
        select(RoundItem.task_id, RoundItem.predicted_label, RoundItem.model_version).where(
            RoundItem.task_id.in_(task_ids)
        )
    )
    return {task_id: (label, version) for task_id, label, version in rows}


def _resolve_labels(session: Session, image_ids: set[int]) -> int:
    """Set each image's label to the majority of its accepted annotations (latest breaks ties)."""
    labeled = 0
    for image_id in sorted(image_ids):
        image = session.get(Image, image_id)
        if image is None:
            continue
        accepted = list(
            session.scalars(
                select(Annotation)
                .where(Annotation.image_id == image_id, Annotation.status == "accepted")
                .order_by(Annotation.annotated_at, Annotation.studio_annotation_id)
            )
        )
        if not accepted:
            continue
        votes = Counter(a.label for a in accepted)
        best = max(votes.values())
        label = next(a.label for a in reversed(accepted) if votes[a.label] == best)
        if image.label != label or image.label_source != "annotation":
            image.label, image.label_source, image.labeled_at = label, "annotation", utcnow()
        labeled += 1
    return labeled
