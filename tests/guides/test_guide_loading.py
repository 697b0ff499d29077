"""Reading guides from text and files: YAML problems, file problems, the error's shape."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pydantic import ValidationError

from guides import GuideError, GuideProblem, example_guide_path, load_guide, parse_guide

VALID = """\
name: Tiny
version: "1"
labels:
  - {name: Cat, definition: a cat, hotkey: c}
  - {name: Dog, definition: a dog, hotkey: d}
"""


def _problems(text: str) -> list[GuideProblem]:
    with pytest.raises(GuideError) as caught:
        parse_guide(text)
    return caught.value.problems


def test_valid_text_parses_with_defaults() -> None:
    guide = parse_guide(VALID)
    assert guide.label_names == ["Cat", "Dog"]
    assert guide.gold_tasks == [] and guide.class_priors is None
    assert guide.thresholds.min_agreement == 0.6
    assert guide.overlap.annotators_per_task == 1 and guide.overlap.share_of_tasks == 0.0


def test_bad_yaml_reports_line_and_column() -> None:
    (problem,) = _problems(VALID + "rules: [unclosed\nthresholds: {}\n")
    assert problem.location == "<root>"
    assert problem.message == (
        "invalid YAML at line 7, column 11: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 6, column 8)"
    )


def test_tab_indentation_reports_its_line() -> None:
    (problem,) = _problems('name: Tiny\nversion: "1"\nlabels:\n\t- name: Cat\n')
    assert "line 4" in problem.message


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    (problem,) = _problems(VALID + "name: Other\n")
    assert problem.location == "<root>"
    assert "line 6" in problem.message
    assert "duplicate key 'name' (first defined at line 1)" in problem.message


def test_yaml_merge_keys_still_work() -> None:
    text = VALID + "thresholds: &t {min_agreement: 0.7}\noverlap:\n  annotators_per_task: 3\n"
    assert parse_guide(text).thresholds.min_agreement == 0.7


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- Cat\n- Dog\n", "got a list"),
        ("just a sentence\n", "got text 'just a sentence'"),
        ("42\n", "got a number (42)"),
        ("", "the document is empty"),
        ("# only a comment\n", "the document is empty"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, words: str) -> None:
    (problem,) = _problems(text)
    assert problem.location == "<root>"
    assert words in problem.message


def test_unknown_field_is_named_by_its_location() -> None:
    (problem,) = _problems(VALID + "labelz: []\n")
    assert problem == GuideProblem("labelz", "unknown field")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(GuideError) as caught:
        load_guide(path)
    assert caught.value.source == str(path)
    (problem,) = caught.value.problems
    assert problem.location == "<file>"
    assert "No such file" in problem.message
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(GuideError, match="cannot read file"):
        load_guide(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.replace("a cat", "un chat gris \u00e9").encode("latin-1"))
    with pytest.raises(GuideError, match="not UTF-8"):
        load_guide(path)


def test_load_guide_accepts_str_and_path(tmp_path: Path) -> None:
    path = tmp_path / "guide.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_guide(path) == load_guide(str(path)) == parse_guide(VALID)


def test_error_names_the_file_on_every_line(tmp_path: Path) -> None:
    path = tmp_path / "guide.yaml"
    path.write_text(VALID.replace("hotkey: d", "hotkey: c") + "colour: red\n", encoding="utf-8")
    with pytest.raises(GuideError) as caught:
        load_guide(path)
    err = caught.value
    assert err.code == "invalid_guide"
    assert err.source == str(path)
    assert str(err).splitlines() == [
        f"{path}: labels[1].hotkey: duplicate hotkey 'c' (already used by 'Cat')",
        f"{path}: colour: unknown field",
    ]
    assert isinstance(err.__cause__, ValidationError)


def test_parse_guide_default_source() -> None:
    with pytest.raises(GuideError) as caught:
        parse_guide("[]")
    assert caught.value.source == "<string>"
    assert str(caught.value).startswith("<string>: <root>: ")


def test_guide_error_survives_pickling() -> None:
    err = GuideError([GuideProblem("labels", "must have at least 2 items")], source="g.yaml")
    copy = pickle.loads(pickle.dumps(err))
    assert copy.problems == err.problems and copy.source == "g.yaml"
    assert str(copy) == str(err)


def test_guide_error_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one"):
        GuideError([])


def test_example_path_is_a_bundled_file() -> None:
    path = example_guide_path()
    assert path.name == "fashion-mnist.yaml" and path.is_file()
