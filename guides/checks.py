"""Rules that span several fields of a guide: unique labels and hotkeys, gold labels, priors.

The checks read a plain mapping (the parsed YAML, or ``Guide.model_dump()``) and skip
anything malformed, so they can run next to field validation and report their own
problems even when some fields are invalid.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass

from guides.errors import GuideProblem, format_location

PRIOR_TOLERANCE = 1e-3
"""How far from 1 the class priors may sum."""

MAX_NAME_LENGTH = 64
"""Longest label name, in characters."""


class GuideConflicts(ValueError):
    """Cross-field problems, raised from ``Guide``'s validator so pydantic reports them."""

    def __init__(self, problems: list[GuideProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


@dataclass(frozen=True)
class _Label:
    index: int
    name: str | None
    hotkey: str | None


def coerce_hotkey(value: object) -> object:
    """Read a YAML integer 0-9 as its digit (``hotkey: 1`` means ``"1"``); leave the rest."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)
    return value


def cross_field_problems(data: Mapping[str, object]) -> list[GuideProblem]:
    """Return every cross-field problem in a guide mapping, each at its own location."""
    labels = _labels(data.get("labels"))
    problems = _duplicate_names(labels) + _duplicate_hotkeys(labels)
    known = _known_names(data.get("labels"), labels)
    problems += _gold_problems(data.get("gold_tasks"), known)
    problems += _prior_problems(data.get("class_priors"), known)
    return problems


def _labels(raw: object) -> list[_Label]:
    if not isinstance(raw, list):
        return []
    labels: list[_Label] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            continue
        name, hotkey = _label_name(item.get("name")), coerce_hotkey(item.get("hotkey"))
        labels.append(_Label(index, name, hotkey if isinstance(hotkey, str) else None))
    return labels


def _known_names(raw: object, labels: list[_Label]) -> list[str] | None:
    """Label names, or None when some label has no usable name (membership is then unknown)."""
    if not isinstance(raw, list) or len(labels) != len(raw):
        return None
    names = [label.name for label in labels if label.name is not None]
    return names if len(names) == len(raw) else None


def _label_name(value: object) -> str | None:
    """The name as ``LabelDefinition`` would keep it, or None when it would reject it."""
    name = _text(value)
    if name is None or len(name) > MAX_NAME_LENGTH or "\n" in name or "\r" in name:
        return None
    return name


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _duplicate_names(labels: list[_Label]) -> list[GuideProblem]:
    problems: list[GuideProblem] = []
    seen: dict[str, _Label] = {}
    for label in labels:
        if label.name is None:
            continue
        first = seen.setdefault(label.name.casefold(), label)
        if first is not label:
            note = "" if first.name == label.name else "; label names ignore case"
            problems.append(
                GuideProblem(
                    format_location(("labels", label.index, "name")),
                    f"duplicate label name {label.name!r} (already used by "
                    f"labels[{first.index}] {first.name!r}{note})",
                )
            )
    return problems


def _duplicate_hotkeys(labels: list[_Label]) -> list[GuideProblem]:
    problems: list[GuideProblem] = []
    seen: dict[str, _Label] = {}
    for label in labels:
        if label.hotkey is None:
            continue
        first = seen.setdefault(label.hotkey.casefold(), label)
        if first is not label:
            owner = repr(first.name) if first.name else f"labels[{first.index}]"
            problems.append(
                GuideProblem(
                    format_location(("labels", label.index, "hotkey")),
                    f"duplicate hotkey {label.hotkey!r} (already used by {owner})",
                )
            )
    return problems


def _gold_problems(raw: object, known: list[str] | None) -> list[GuideProblem]:
    if not isinstance(raw, list):
        return []
    problems: list[GuideProblem] = []
    images: dict[str, int] = {}
    for index, task in enumerate(raw):
        if not isinstance(task, Mapping):
            continue
        image = _text(task.get("image"))
        if image is not None and images.setdefault(image, index) != index:
            problems.append(
                GuideProblem(
                    format_location(("gold_tasks", index, "image")),
                    f"duplicate gold image {image!r} (already used by gold_tasks[{images[image]}])",
                )
            )
        label = _text(task.get("expected_label"))
        if label is not None and known is not None and label not in known:
            problems.append(
                GuideProblem(
                    format_location(("gold_tasks", index, "expected_label")),
                    _unknown_label_message(label, known),
                )
            )
    return problems


def _unknown_label_message(label: str, known: list[str]) -> str:
    folded = {name.casefold(): name for name in known}
    guess = folded.get(label.casefold()) or next(
        iter(difflib.get_close_matches(label, known, n=1)), None
    )
    if guess is not None:
        return f"unknown label {label!r} (did you mean {guess!r}?)"
    return f"unknown label {label!r}; expected one of: {', '.join(map(repr, known))}"


def _prior_problems(raw: object, known: list[str] | None) -> list[GuideProblem]:
    if not isinstance(raw, Mapping):
        return []
    problems: list[GuideProblem] = []
    if known is not None:
        for key in raw:
            if isinstance(key, str) and key not in known:
                problems.append(
                    GuideProblem(
                        format_location(("class_priors", key)),
                        f"{key!r} is not a label",
                    )
                )
        missing = [name for name in known if name not in raw]
        if missing:
            listed = ", ".join(map(repr, missing))
            problems.append(GuideProblem("class_priors", f"missing prior for label(s): {listed}"))
    values = list(raw.values())
    if values and all(_is_number(value) for value in values):
        total = math.fsum(values)
        if not abs(total - 1.0) <= PRIOR_TOLERANCE:
            problems.append(
                GuideProblem(
                    "class_priors",
                    f"priors sum to {total:.6g}; they must sum to 1 (within {PRIOR_TOLERANCE:g})",
                )
            )
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
