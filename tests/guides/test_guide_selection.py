"""The guide's selection policy: optional, validated, invisible to the fingerprint by default."""

from __future__ import annotations

import pytest

from guides import GuideError, example_guide_path, parse_guide
from guides.schema import SelectionPolicy


def example_without_selection() -> str:
    return example_guide_path("fashion-mnist").read_text().split("\nselection:")[0] + "\n"


def test_the_example_names_the_benchmarks_default_and_leaving_it_out_changes_nothing() -> None:
    from models.selection import DEFAULT_STRATEGY

    named = parse_guide(example_guide_path("fashion-mnist").read_text())
    assert named.selection == SelectionPolicy(strategy=DEFAULT_STRATEGY, class_balanced=False)
    plain = parse_guide(example_without_selection())
    assert plain.selection == SelectionPolicy()
    document = plain.model_dump(mode="json")
    assert "selection" in document  # defaults are dropped from the fingerprint only
    assert parse_guide(example_without_selection() + "selection: {}\n").fingerprint() == (
        plain.fingerprint()
    )
    assert named.fingerprint() != plain.fingerprint()
    balanced = parse_guide(example_without_selection() + "selection:\n  class_balanced: true\n")
    assert balanced.selection.class_balanced and balanced.fingerprint() != plain.fingerprint()


@pytest.mark.parametrize(
    "selection",
    [
        "  strategy: ''\n",
        "  strategy: [margin]\n",
        "  class_balanced: maybe\n",
        "  batch: 20\n",
        "  strategy: " + "x" * 65 + "\n",
    ],
)
def test_a_bad_selection_policy_is_refused_with_its_field(selection: str) -> None:
    with pytest.raises(GuideError) as refused:
        parse_guide(example_without_selection() + "selection:\n" + selection)
    assert "selection" in str(refused.value)
