"""Problems are all collected, in field order, with cross-field checks beside field errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

from guides import GuideProblem, parse_guide

Data = dict[str, Any]
Problems = Callable[[Data], list[GuideProblem]]


def test_the_fixture_guide_is_valid(valid_data: Data) -> None:
    guide = parse_guide(yaml.safe_dump(valid_data))
    assert guide.label_names == ["T-shirt/top", "Trouser", "Ankle boot"]


def test_accepted_variants(valid_data: Data) -> None:
    valid_data["labels"][0]["hotkey"] = 7  # an unquoted digit is read as "7"
    valid_data["gold_tasks"][0]["image"] = "https://images.example.org/boot.png"
    valid_data["class_priors"] = {
        "T-shirt/top": 0.3334,
        "Trouser": 0.3333,
        "Ankle boot": 0.333,
    }
    valid_data["labels"][1]["name"] = "  Trouser  "
    guide = parse_guide(yaml.safe_dump(valid_data))
    assert guide.labels[0].hotkey == "7"
    assert guide.labels[1].name == "Trouser"


def test_two_mistakes_give_two_problems(valid_data: Data, problems_for: Problems) -> None:
    valid_data["labels"][2]["hotkey"] = "1"
    valid_data["thresholds"] = {"min_agreement": 2}
    problems = problems_for(valid_data)
    assert problems == [
        GuideProblem("labels[2].hotkey", "duplicate hotkey '1' (already used by 'T-shirt/top')"),
        GuideProblem("thresholds.min_agreement", "must be <= 1, got 2"),
    ]


def test_every_problem_is_collected_in_field_order(
    valid_data: Data, problems_for: Problems
) -> None:
    valid_data["version"] = 2
    valid_data["extra"] = True
    valid_data["labels"][1]["definition"] = ""
    valid_data["labels"][2]["hotkey"] = "2"
    valid_data["gold_tasks"][0]["expected_label"] = "Boot"
    valid_data["class_priors"]["T-shirt/top"] = -0.5
    valid_data["overlap"] = {"share_of_tasks": 0.5}
    problems = problems_for(valid_data)
    assert [p.location for p in problems] == [
        "version",
        "labels[1].definition",
        "labels[2].hotkey",
        "gold_tasks[0].expected_label",
        "class_priors['T-shirt/top']",
        "class_priors",
        "overlap",
        "extra",
    ]
    assert problems[5].message == "priors sum to 0; they must sum to 1 (within 0.001)"


def test_cross_field_checks_run_beside_field_errors(
    valid_data: Data, problems_for: Problems
) -> None:
    valid_data["labels"][0]["definition"] = ""
    valid_data["labels"][1]["hotkey"] = "1"
    valid_data["gold_tasks"][0]["expected_label"] = "ankle boot"
    assert problems_for(valid_data) == [
        GuideProblem("labels[0].definition", "must not be empty"),
        GuideProblem("labels[1].hotkey", "duplicate hotkey '1' (already used by 'T-shirt/top')"),
        GuideProblem(
            "gold_tasks[0].expected_label",
            "unknown label 'ankle boot' (did you mean 'Ankle boot'?)",
        ),
    ]


def test_invalid_names_do_not_cause_knock_on_problems(
    valid_data: Data, problems_for: Problems
) -> None:
    valid_data["labels"][2]["name"] = "Ankle\nboot"
    assert [p.location for p in problems_for(valid_data)] == ["labels[2].name"]


def test_unknown_label_without_a_close_match_lists_the_labels(
    valid_data: Data, problems_for: Problems
) -> None:
    valid_data["gold_tasks"][0]["expected_label"] = "Handbag"
    (problem,) = problems_for(valid_data)
    assert problem.message == (
        "unknown label 'Handbag'; expected one of: 'T-shirt/top', 'Trouser', 'Ankle boot'"
    )
