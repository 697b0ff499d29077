"""The guide's training section: which head, validated, and invisible to old fingerprints."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from guides import GuideError, TrainingPolicy, example_guide_path, load_guide, parse_guide


def test_a_guide_without_training_keeps_its_fingerprint() -> None:
    guide = load_guide(example_guide_path("fashion-mnist"))
    assert guide.training == TrainingPolicy()
    document = guide.model_dump(mode="json")
    del document["training"], document["flow"]  # both at their defaults
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert guide.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()[:12]


def test_new_guides_get_the_semi_supervised_head() -> None:
    assert load_guide(example_guide_path("fashion-mnist")).training.head == "semi_supervised"


def test_naming_the_head_is_read_and_only_a_change_moves_the_fingerprint() -> None:
    text = example_guide_path("fashion-mnist").read_text()
    plain = parse_guide(text)
    supervised = parse_guide(text + "\ntraining:\n  head: supervised\n")
    assert supervised.training.head == "supervised"
    assert supervised.fingerprint() != plain.fingerprint()
    default = parse_guide(text + "\ntraining:\n  head: semi_supervised\n")
    assert default.fingerprint() == plain.fingerprint()


@pytest.mark.parametrize("training", [{"head": "knn"}, {"head": 3}, {"heads": "supervised"}])
def test_an_unknown_head_or_field_is_an_error(training: object) -> None:
    data = yaml.safe_load(example_guide_path("fashion-mnist").read_text())
    data["training"] = training
    with pytest.raises(GuideError) as caught:
        parse_guide(yaml.safe_dump(data))
    assert caught.value.problems[0].location.startswith("training.")
