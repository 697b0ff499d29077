"""How one annotation is judged against the guide before it becomes a label."""

from __future__ import annotations

from guides import example_guide_path, load_guide
from labeling.tasks import StudioAnnotation
from service.studio.intake import judge

GUIDE = load_guide(example_guide_path("fashion-mnist"))


def annotation(
    choices: list[str], *, cancelled: bool = False, image_id: int | None = 1
) -> StudioAnnotation:
    return StudioAnnotation(
        annotation_id=1,
        task_id=1,
        image_id=image_id,
        choices=choices,
        completed_by=1,
        was_cancelled=cancelled,
        lead_time=1.0,
        created_at=None,
        updated_at=None,
        parent_prediction=None,
    )


def test_a_single_known_choice_is_accepted() -> None:
    assert judge(annotation(["Coat"]), GUIDE) == ("accepted", "Coat", None)


def test_unknown_missing_and_multiple_choices_are_rejected_with_a_code() -> None:
    status, label, problem = judge(annotation(["Hat"]), GUIDE)
    assert (status, label) == ("rejected", None) and problem.startswith("unknown_label:")
    assert judge(annotation([]), GUIDE)[2].startswith("choice_count:")
    assert judge(annotation(["Coat", "Bag"]), GUIDE)[2].startswith("choice_count:")
    assert judge(annotation(["Coat"], image_id=None), GUIDE)[2].startswith("unknown_task:")


def test_skipped_tasks_are_kept_as_cancelled() -> None:
    assert judge(annotation([], cancelled=True), GUIDE) == ("cancelled", None, None)
