"""Label Studio project settings derived from the labeling guide (no SDK import here)."""

from __future__ import annotations

from dataclasses import dataclass

import markdown

from guides import Guide

IMAGE_FIELD = "image"
CHOICES_FIELD = "label"


@dataclass(frozen=True)
class ProjectSpec:
    """What a Label Studio project needs to exist for one guide version."""

    title: str
    description: str
    instructions_html: str
    choices: list[tuple[str, str, str | None]]  # (label, definition, hotkey)
    header: str
    maximum_annotations: int
    overlap_percentage: int
    guide_fingerprint: str


def project_spec(guide: Guide, *, title: str) -> ProjectSpec:
    """The project for `guide`: Choices over its labels and its instructions shown to annotators."""
    return ProjectSpec(
        title=title,
        description=f"{guide.name} v{guide.version} (guide {guide.fingerprint()})",
        instructions_html=markdown.markdown(guide.instructions_markdown(), extensions=["tables"]),
        choices=[(label.name, label.definition, label.hotkey) for label in guide.labels],
        header=f"{guide.name}: pick the label that fits (the model's suggestion is pre-selected)",
        # Each task's overlap is set by the service after import (`service/studio/overlap.py`):
        # with one annotation per task and a 100% cohort Label Studio never rearranges it.
        maximum_annotations=1,
        overlap_percentage=100,
        guide_fingerprint=guide.fingerprint(),
    )
