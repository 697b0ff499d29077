"""Which images a round may choose: skipped, deleted and never-pushed tasks give theirs back."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from guides import Guide
from labeling.tasks import StudioAnnotation
from service.core.orm import ModelVersion, Round, RoundItem
from service.learning.selection import candidate_images
from service.studio.intake import IntakeReport, delete_tasks, store_annotations
from tests.studio.conftest import add_images


def _round(session: Session, status: str, items: dict[int, int | None]) -> None:
    """A round in `status` holding image id -> task id (None: never imported)."""
    round_ = Round(strategy="entropy", k=len(items), model_version="m1", pool_size=9, status=status)
    session.add(round_)
    session.flush()
    for rank, (image_id, task_id) in enumerate(items.items(), 1):
        session.add(
            RoundItem(
                round_id=round_.id,
                image_id=image_id,
                rank=rank,
                score=0.5,
                predicted_label="Coat",
                predicted_probability=0.5,
                model_version="m1",
                task_id=task_id,
            )
        )


def _annotation(annotation_id: int, task_id: int, image_id: int, **kw: object) -> StudioAnnotation:
    values: dict[object, object] = {
        "annotation_id": annotation_id,
        "task_id": task_id,
        "image_id": image_id,
        "choices": [],
        "completed_by": 1,
        "was_cancelled": False,
        "lead_time": 1.0,
        "created_at": None,
        "updated_at": None,
        "parent_prediction": None,
    }
    values.update(kw)
    return StudioAnnotation(**values)  # type: ignore[arg-type]


def test_only_waiting_or_resumable_tasks_hold_their_images(
    sessions: sessionmaker[Session], guide: Guide
) -> None:
    with sessions() as session:
        waiting, skipped, rejected, deleted, unpushed, cut_off, fresh = add_images(session, 7)
        session.add(
            ModelVersion(
                id="m1",
                backbone_id="b",
                checkpoint_path="-",
                n_train=10,
                class_names=guide.label_names,
                metrics={},
                guide_fingerprint=guide.fingerprint(),
                labels_digest="d",
            )
        )
        _round(session, "pushed", {waiting: 1, skipped: 2, rejected: 3, deleted: 4})
        _round(session, "selected", {unpushed: None})
        _round(session, "pushing", {cut_off: None})
        report = IntakeReport()
        store_annotations(
            session,
            [
                _annotation(10, 2, skipped, was_cancelled=True),
                _annotation(11, 3, rejected, choices=["Hat"]),
                _annotation(12, 4, deleted, choices=["Bag"]),
            ],
            guide=guide,
            shown={},
            report=report,
            project_id=1,
        )
        delete_tasks(session, [4], report)
        session.commit()
        chosen = {image.id for image in candidate_images(session)}
        assert chosen == {skipped, rejected, deleted, unpushed, fresh}
