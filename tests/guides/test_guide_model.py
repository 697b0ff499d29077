"""The Guide object itself: lookups, priors, instructions, immutability, Python construction."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from guides import (
    Guide,
    LabelDefinition,
    OverlapPolicy,
    QualityThresholds,
    example_guide_path,
    load_guide,
    parse_guide,
)


@pytest.fixture
def guide(valid_data: dict[str, Any]) -> Guide:
    valid_data["description"] = "Sort product photos."
    valid_data["rules"] = "### Footwear\n\nA shaft above the ankle makes it an Ankle boot."
    valid_data["labels"][1]["examples"] = ["jeans", "leggings"]
    return parse_guide(yaml.safe_dump(valid_data, sort_keys=False))


def test_label_index_follows_declared_order(guide: Guide) -> None:
    assert [guide.label_index(n) for n in ("T-shirt/top", "Trouser", "Ankle boot")] == [
        0,
        1,
        2,
    ]


def test_label_index_raises_on_unknown_label(guide: Guide) -> None:
    with pytest.raises(KeyError, match="unknown label 'Sandal'.*'T-shirt/top', 'Trouser'"):
        guide.label_index("Sandal")
    with pytest.raises(KeyError):
        guide.label_index("trouser")  # lookups are exact, case included


def test_has_label_is_exact(guide: Guide) -> None:
    assert guide.has_label("Trouser")
    assert not guide.has_label("trouser")
    assert not guide.has_label("Sandal")


def test_prior_vector_is_in_label_order(valid_data: dict[str, Any]) -> None:
    valid_data["class_priors"] = {"Ankle boot": 0.2, "Trouser": 0.3, "T-shirt/top": 0.5}
    guide = parse_guide(yaml.safe_dump(valid_data))
    assert guide.prior_vector() == [0.5, 0.3, 0.2]


def test_prior_vector_is_none_without_priors(valid_data: dict[str, Any]) -> None:
    del valid_data["class_priors"]
    assert parse_guide(yaml.safe_dump(valid_data)).prior_vector() is None


def test_instructions_mention_every_label_and_the_rules(guide: Guide) -> None:
    text = guide.instructions_markdown()
    assert text.startswith("# Tiny (version 1)\n\nSort product photos.")
    for label in guide.labels:
        assert f"### {label.name}" in text
        assert label.definition in text
        assert f"Hotkey: `{label.hotkey}`" in text
    assert "- jeans\n- leggings" in text
    assert text.index("### Ankle boot") < text.index("## Rules") < text.index(guide.rules)


def test_example_instructions_cover_every_label_and_rule() -> None:
    guide = load_guide(example_guide_path())
    text = guide.instructions_markdown()
    assert all(f"### {name}" in text for name in guide.label_names)
    assert guide.rules in text
    assert "### When you are unsure" in text


def test_instructions_without_rules_or_hotkeys() -> None:
    guide = Guide(
        name="Pets",
        version="2",
        labels=[
            LabelDefinition(name="Cat", definition="a cat"),
            LabelDefinition(name="Dog", definition="a dog"),
        ],
    )
    text = guide.instructions_markdown()
    assert "## Rules" not in text and "Hotkey" not in text
    assert "### Cat\n\na cat" in text


def test_guide_is_frozen(guide: Guide) -> None:
    with pytest.raises(ValidationError):
        guide.version = "2"  # type: ignore[misc]


def test_building_an_inconsistent_guide_in_python_fails(guide: Guide) -> None:
    labels = [
        LabelDefinition(name="Cat", definition="a cat", hotkey="1"),
        LabelDefinition(name="Dog", definition="a dog", hotkey="1"),
    ]
    with pytest.raises(ValidationError, match=r"labels\[1\]\.hotkey: duplicate hotkey '1'"):
        Guide(name="Pets", version="1", labels=labels)


def test_fingerprint_depends_on_label_order(valid_data: dict[str, Any]) -> None:
    first = parse_guide(yaml.safe_dump(valid_data))
    valid_data["labels"].reverse()
    assert parse_guide(yaml.safe_dump(valid_data)).fingerprint() != first.fingerprint()


def test_fingerprint_ignores_prior_key_order(valid_data: dict[str, Any]) -> None:
    first = parse_guide(yaml.safe_dump(valid_data))
    valid_data["class_priors"] = dict(reversed(valid_data["class_priors"].items()))
    assert parse_guide(yaml.safe_dump(valid_data)).fingerprint() == first.fingerprint()


def test_defaults_of_thresholds_and_overlap() -> None:
    assert QualityThresholds() == QualityThresholds(
        min_agreement=0.6,
        min_model_agreement=0.5,
        min_gold_accuracy=0.8,
        drift_significance=0.05,
    )
    assert OverlapPolicy() == OverlapPolicy(annotators_per_task=1, share_of_tasks=0.0)
    assert OverlapPolicy(annotators_per_task=3, share_of_tasks=1.0).share_of_tasks == 1.0
