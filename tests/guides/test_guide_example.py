"""The bundled Fashion-MNIST guide: content, consistency with the data set, fingerprint."""

from __future__ import annotations

import math
import re

import pytest

from guides import Guide, example_guide_path, load_guide, parse_guide

CANONICAL = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@pytest.fixture
def guide() -> Guide:
    return load_guide(example_guide_path())


def test_example_has_the_ten_classes_in_canonical_order(guide: Guide) -> None:
    assert guide.label_names == CANONICAL
    assert [guide.label_index(name) for name in CANONICAL] == list(range(10))


def test_example_hotkeys_are_digits_one_to_nine_then_zero(guide: Guide) -> None:
    assert [label.hotkey for label in guide.labels] == list("1234567890")


def test_example_labels_have_definitions_and_examples(guide: Guide) -> None:
    for label in guide.labels:
        assert len(label.definition) > 40, label.name
        assert len(label.examples) >= 2, label.name


def test_example_priors_are_uniform_and_sum_to_one(guide: Guide) -> None:
    priors = guide.prior_vector()
    assert priors == [0.1] * 10
    assert math.isclose(math.fsum(priors), 1.0)


def test_example_thresholds_and_overlap(guide: Guide) -> None:
    assert guide.thresholds.min_agreement == 0.6
    assert guide.thresholds.min_model_agreement == 0.5
    assert guide.thresholds.min_gold_accuracy == 0.8
    assert guide.thresholds.drift_significance == 0.05
    assert guide.overlap.annotators_per_task == 2
    assert guide.overlap.share_of_tasks == 0.1


def test_example_has_one_valid_gold_task_per_class(guide: Guide) -> None:
    assert len(guide.gold_tasks) == 10
    assert all(guide.has_label(task.expected_label) for task in guide.gold_tasks)
    assert sorted(task.expected_label for task in guide.gold_tasks) == sorted(CANONICAL)
    for task in guide.gold_tasks:
        assert re.fullmatch(r"test/\d{5}\.png", task.image), task.image


def test_example_rules_cover_the_confusable_groups(guide: Guide) -> None:
    for phrase in ("Upper-body garments", "Footwear", "Dress vs Coat", "Bag", "unsure"):
        assert phrase in guide.rules


def test_example_gold_labels_match_the_dataset(
    guide: Guide, fashion_mnist_test_labels: bytes
) -> None:
    for task in guide.gold_tasks:
        index = int(task.image.removeprefix("test/").removesuffix(".png"))
        true_class = fashion_mnist_test_labels[index]
        assert guide.label_names[true_class] == task.expected_label, task.image


def test_example_gold_images_are_the_first_of_each_class(
    guide: Guide, fashion_mnist_test_labels: bytes
) -> None:
    first = {}
    for index, label in enumerate(fashion_mnist_test_labels):
        first.setdefault(label, index)
    expected = {CANONICAL[label]: f"test/{index:05d}.png" for label, index in first.items()}
    assert {task.expected_label: task.image for task in guide.gold_tasks} == expected


def test_fingerprint_is_stable_across_loads(guide: Guide) -> None:
    again = load_guide(example_guide_path())
    assert guide.fingerprint() == again.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{12}", guide.fingerprint())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('version: "1.0.0"', 'version: "1.0.1"'),
        ("min_gold_accuracy: 0.8", "min_gold_accuracy: 0.85"),
        ("note: Two long narrow legs.", "note: Two legs."),
        ('hotkey: "0"', "hotkey: z"),
    ],
)
def test_fingerprint_changes_when_a_field_changes(guide: Guide, old: str, new: str) -> None:
    text = example_guide_path().read_text(encoding="utf-8")
    assert text.count(old) == 1
    changed = parse_guide(text.replace(old, new))
    assert changed.fingerprint() != guide.fingerprint()


def test_fingerprint_ignores_yaml_formatting(guide: Guide) -> None:
    text = example_guide_path().read_text(encoding="utf-8")
    reformatted = "# a comment\n" + text.replace("min_agreement: 0.6", "min_agreement:   0.60")
    assert parse_guide(reformatted).fingerprint() == guide.fingerprint()


def test_unknown_example_name_lists_the_available_ones() -> None:
    with pytest.raises(FileNotFoundError, match="fashion-mnist"):
        example_guide_path("cifar-10")
    with pytest.raises(FileNotFoundError):
        example_guide_path("../examples/fashion-mnist")
