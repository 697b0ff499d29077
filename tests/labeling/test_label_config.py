"""The Label Studio config and task payloads generated from the guide."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from guides import example_guide_path, load_guide
from labeling.gateway import build_label_config
from labeling.studio_config import project_spec
from labeling.tasks import Suggestion, TaskDraft, choices_of, task_payload


def test_config_has_one_choice_per_label_with_definition_and_hotkey() -> None:
    guide = load_guide(example_guide_path("fashion-mnist"))
    config = ET.fromstring(build_label_config(project_spec(guide, title="t")))
    choices = config.find("Choices")
    assert choices is not None and choices.get("toName") == "image"
    assert choices.get("choice") == "single-radio" and choices.get("required") == "true"
    values = [c.get("value") for c in choices.findall("Choice")]
    assert values == guide.label_names
    for choice, label in zip(choices.findall("Choice"), guide.labels, strict=True):
        assert choice.get("hint") == label.definition
        assert choice.get("hotkey") == label.hotkey
    assert config.find("Image").get("value") == "$image"  # type: ignore[union-attr]


def test_project_spec_carries_instructions_and_leaves_overlap_to_each_task() -> None:
    guide = load_guide(example_guide_path("fashion-mnist"))
    spec = project_spec(guide, title="fashion")
    assert "<h" in spec.instructions_html
    for name in guide.label_names:
        assert name in spec.instructions_html
    # The guide's overlap is set per task after import; the project never rearranges it.
    assert (spec.maximum_annotations, spec.overlap_percentage) == (1, 100)
    assert guide.fingerprint() in spec.description


def test_task_payload_carries_the_prediction_and_reads_back() -> None:
    draft = TaskDraft(
        image_id=7,
        image_url="http://127.0.0.1:8000/media/7",
        suggestion=Suggestion("Coat", 0.42, "h-abc"),
        meta={"rank": 1},
    )
    payload = task_payload(draft)
    assert payload["data"] == {"image": "http://127.0.0.1:8000/media/7", "image_id": 7}
    (prediction,) = payload["predictions"]
    assert (prediction["model_version"], prediction["score"]) == ("h-abc", 0.42)
    assert choices_of(prediction["result"]) == ["Coat"]
    assert choices_of(None) == [] and choices_of([{"type": "labels"}]) == []
