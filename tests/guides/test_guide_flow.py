"""The guide's flow limits: optional, validated, and invisible to the fingerprint by default."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import yaml

from guides import FlowPolicy, GuideError, example_guide_path, load_guide, parse_guide


def fingerprint_without_flow(data: dict[str, Any]) -> str:
    """The fingerprint as computed before `flow` existed: the canonical JSON of the rest."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def test_existing_guides_keep_their_fingerprint() -> None:
    guide = load_guide(example_guide_path("fashion-mnist"))
    assert guide.flow == FlowPolicy() and guide.flow.wip_per_annotator is None
    document = guide.model_dump(mode="json")
    del document["flow"], document["training"]  # `training` came later, also at its default
    assert guide.fingerprint() == fingerprint_without_flow(document)


def test_a_wip_limit_is_read_and_changes_the_fingerprint() -> None:
    text = example_guide_path("fashion-mnist").read_text()
    plain = parse_guide(text)
    limited = parse_guide(text + "\nflow:\n  wip_per_annotator: 25\n")
    assert limited.flow.wip_per_annotator == 25
    assert limited.fingerprint() != plain.fingerprint()
    explicit_default = parse_guide(text + "\nflow: {}\n")
    assert explicit_default.fingerprint() == plain.fingerprint()


@pytest.mark.parametrize("value", [0, -3, 2.5, "10", True])
def test_a_wip_limit_must_be_a_positive_whole_number(value: object) -> None:
    data = yaml.safe_load(example_guide_path("fashion-mnist").read_text())
    data["flow"] = {"wip_per_annotator": value}
    with pytest.raises(GuideError) as caught:
        parse_guide(yaml.safe_dump(data))
    assert [p.location for p in caught.value.problems] == ["flow.wip_per_annotator"]


def test_unknown_flow_fields_are_errors() -> None:
    data = yaml.safe_load(example_guide_path("fashion-mnist").read_text())
    data["flow"] = {"wip_limit": 5}
    with pytest.raises(GuideError) as caught:
        parse_guide(yaml.safe_dump(data))
    assert [p.location for p in caught.value.problems] == ["flow.wip_limit"]
