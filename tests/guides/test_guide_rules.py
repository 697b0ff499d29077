"""One test per kind of guide problem: exactly one problem, at the exact location."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from guides import GuideProblem

Data = dict[str, Any]
Problems = Callable[[Data], list[GuideProblem]]


def _set(path: str, value: object) -> Callable[[Data], None]:
    """Mutation that sets a dotted/indexed path (``labels.0.hotkey``) to ``value``."""

    def apply(data: Data) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = data
        for part in parents:
            target = target[part]
        target[last] = value

    return apply


def _delete(path: str) -> Callable[[Data], None]:
    def apply(data: Data) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = data
        for part in parents:
            target = target[part]
        del target[last]

    return apply


def _all(*mutations: Callable[[Data], None]) -> Callable[[Data], None]:
    def apply(data: Data) -> None:
        for mutation in mutations:
            mutation(data)

    return apply


def _append(key: str, item: object) -> Callable[[Data], None]:
    return lambda data: data.setdefault(key, []).append(item)


RULES = [
    # (id, mutation, location, words the message must contain)
    ("missing-name", _delete("name"), "name", "required field is missing"),
    ("missing-labels", _delete("labels"), "labels", "required field is missing"),
    ("unknown-top-field", _set("colour", "red"), "colour", "unknown field"),
    (
        "unknown-label-field",
        _set("labels.1.colour", "red"),
        "labels[1].colour",
        "unknown field",
    ),
    (
        "unknown-threshold",
        _set("thresholds", {"min_kappa": 0.5}),
        "thresholds.min_kappa",
        "unknown field",
    ),
    ("empty-version", _set("version", "  "), "version", "must not be empty"),
    ("number-version", _set("version", 1.0), "version", "quotes"),
    (
        "one-label",
        _all(
            _set("labels", [{"name": "A", "definition": "a"}]),
            _delete("gold_tasks"),
            _delete("class_priors"),
        ),
        "labels",
        "at least 2",
    ),
    ("labels-not-list", _set("labels", "A, B"), "labels", "must be a list"),
    ("label-not-mapping", _set("labels.2", "Bag"), "labels[2]", "must be a mapping"),
    ("empty-name", _set("labels.0.name", " "), "labels[0].name", "must not be empty"),
    ("long-name", _set("labels.0.name", "x" * 65), "labels[0].name", "at most 64"),
    (
        "newline-name",
        _set("labels.0.name", "T-shirt\ntop"),
        "labels[0].name",
        "single line",
    ),
    (
        "empty-definition",
        _set("labels.1.definition", ""),
        "labels[1].definition",
        "must not be empty",
    ),
    (
        "empty-example",
        _set("labels.1.examples", ["jeans", " "]),
        "labels[1].examples[1]",
        "must not be empty",
    ),
    ("long-hotkey", _set("labels.0.hotkey", "ab"), "labels[0].hotkey", "exactly one"),
    ("space-hotkey", _set("labels.0.hotkey", " "), "labels[0].hotkey", "non-space"),
    ("number-hotkey", _set("labels.0.hotkey", 12), "labels[0].hotkey", "must be text"),
    (
        "duplicate-name",
        _all(
            _set("labels.2.name", "trouser"),
            _delete("gold_tasks"),
            _delete("class_priors"),
        ),
        "labels[2].name",
        "duplicate label name 'trouser'",
    ),
    (
        "duplicate-hotkey",
        _set("labels.2.hotkey", "2"),
        "labels[2].hotkey",
        "duplicate hotkey '2' (already used by 'Trouser')",
    ),
    (
        "gold-unknown-label",
        _set("gold_tasks.0.expected_label", "Boot"),
        "gold_tasks[0].expected_label",
        "unknown label 'Boot'",
    ),
    (
        "gold-duplicate-image",
        _append("gold_tasks", {"image": "test/00000.png", "expected_label": "Trouser"}),
        "gold_tasks[1].image",
        "duplicate gold image",
    ),
    (
        "gold-missing-label",
        _delete("gold_tasks.0.expected_label"),
        "gold_tasks[0].expected_label",
        "required field is missing",
    ),
    (
        "gold-absolute-path",
        _set("gold_tasks.0.image", "/data/test/00000.png"),
        "gold_tasks[0].image",
        "relative to the image pool root",
    ),
    (
        "gold-parent-path",
        _set("gold_tasks.0.image", "../test/00000.png"),
        "gold_tasks[0].image",
        "'..'",
    ),
    (
        "gold-backslash",
        _set("gold_tasks.0.image", "test\\00000.png"),
        "gold_tasks[0].image",
        "forward slashes",
    ),
    (
        "gold-ftp-url",
        _set("gold_tasks.0.image", "ftp://host/a.png"),
        "gold_tasks[0].image",
        "http(s)",
    ),
    (
        "prior-unknown-key",
        _set("class_priors.Boot", 0.0),
        "class_priors.Boot",
        "'Boot' is not a label",
    ),
    (
        "prior-unknown-spaced-key",
        _set("class_priors.Ankle boots", 0.0),
        "class_priors['Ankle boots']",
        "not a label",
    ),
    (
        "prior-missing-label",
        _all(_delete("class_priors.Trouser"), _set("class_priors.Ankle boot", 0.5)),
        "class_priors",
        "missing prior for label(s): 'Trouser'",
    ),
    ("prior-sum", _set("class_priors.Trouser", 0.3), "class_priors", "sum to 1.05"),
    (
        "prior-not-number",
        _set("class_priors.Trouser", "a quarter"),
        "class_priors.Trouser",
        "must be a number",
    ),
    (
        "agreement-above-one",
        _set("thresholds", {"min_agreement": 1.5}),
        "thresholds.min_agreement",
        "must be <= 1, got 1.5",
    ),
    (
        "model-agreement-negative",
        _set("thresholds", {"min_model_agreement": -0.1}),
        "thresholds.min_model_agreement",
        ">= 0",
    ),
    (
        "gold-accuracy-boolean",
        _set("thresholds", {"min_gold_accuracy": True}),
        "thresholds.min_gold_accuracy",
        "must be a number, got a boolean",
    ),
    (
        "drift-zero",
        _set("thresholds", {"drift_significance": 0}),
        "thresholds.drift_significance",
        "> 0",
    ),
    (
        "drift-one",
        _set("thresholds", {"drift_significance": 1}),
        "thresholds.drift_significance",
        "< 1",
    ),
    (
        "annotators-zero",
        _set("overlap", {"annotators_per_task": 0}),
        "overlap.annotators_per_task",
        ">= 1",
    ),
    (
        "annotators-many",
        _set("overlap", {"annotators_per_task": 21}),
        "overlap.annotators_per_task",
        "<= 20",
    ),
    (
        "annotators-fraction",
        _set("overlap", {"annotators_per_task": 2.5}),
        "overlap.annotators_per_task",
        "whole number",
    ),
    (
        "share-above-one",
        _set("overlap", {"annotators_per_task": 2, "share_of_tasks": 1.1}),
        "overlap.share_of_tasks",
        "<= 1",
    ),
    (
        "overlap-one-annotator",
        _set("overlap", {"share_of_tasks": 0.2}),
        "overlap",
        "at least 2 annotators",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "location", "words"),
    [pytest.param(*rule[1:], id=rule[0]) for rule in RULES],
)
def test_each_rule_reports_one_problem_at_its_location(
    valid_data: Data,
    problems_for: Problems,
    mutate: Callable[[Data], None],
    location: str,
    words: str,
) -> None:
    mutate(valid_data)
    problems = problems_for(valid_data)
    assert [p.location for p in problems] == [location]
    assert words in problems[0].message
