"""Read a labeling guide from YAML, reporting every problem as a :class:`GuideError`."""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError

from guides.checks import cross_field_problems
from guides.errors import GuideError, GuideProblem
from guides.schema import Guide
from guides.validation import describe, problems_from_validation_error

EXAMPLES_DIR = Path(__file__).parent / "examples"

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _GuideYamlLoader(yaml.SafeLoader):
    """Safe YAML loader that rejects duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        first_lines: dict[Hashable, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # the base class reports unhashable keys
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first defined at line {first_lines[key]})",
                    key_node.start_mark,
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_guide(text: str, *, source: str = "<string>") -> Guide:
    """Parse and validate a guide from YAML text; ``source`` names it in errors."""
    data = _read_yaml(text, source)
    try:
        return Guide.model_validate(data)
    except ValidationError as err:
        problems = problems_from_validation_error(err)
        problems += [p for p in cross_field_problems(data) if p not in problems]
        raise GuideError(_in_field_order(problems), source=source) from err


def load_guide(path: str | os.PathLike[str]) -> Guide:
    """Load and validate the guide stored at ``path`` (UTF-8 YAML)."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        problem = GuideProblem("<file>", f"not UTF-8 text (invalid byte at offset {err.start})")
        raise GuideError([problem], source=source) from err
    except OSError as err:
        reason = err.strerror or str(err)
        raise GuideError(
            [GuideProblem("<file>", f"cannot read file: {reason}")], source=source
        ) from err
    return parse_guide(text, source=source)


def example_guide_path(name: str = "fashion-mnist") -> Path:
    """Path of the bundled example guide ``guides/examples/<name>.yaml``."""
    available = sorted(path.stem for path in EXAMPLES_DIR.glob("*.yaml"))
    if name not in available:
        raise FileNotFoundError(
            f"no example guide named {name!r}; available: {', '.join(available) or 'none'}"
        )
    return EXAMPLES_DIR / f"{name}.yaml"


def _in_field_order(problems: list[GuideProblem]) -> list[GuideProblem]:
    """Group problems by top-level field, in the order ``Guide`` declares its fields."""
    order = {name: index for index, name in enumerate(Guide.model_fields)}

    def field_rank(problem: GuideProblem) -> int:
        top = re.split(r"[.\[]", problem.location, maxsplit=1)[0]
        return order.get(top, len(order))

    return sorted(problems, key=field_rank)


def _read_yaml(text: str, source: str) -> Mapping[str, object]:
    try:
        # _GuideYamlLoader is a SafeLoader: no arbitrary Python objects.
        data = yaml.load(text, Loader=_GuideYamlLoader)  # noqa: S506
    except yaml.YAMLError as err:
        raise GuideError([GuideProblem("<root>", _yaml_message(err))], source=source) from err
    if data is None:
        problem = GuideProblem(
            "<root>", "the document is empty; expected a mapping of guide fields"
        )
        raise GuideError([problem], source=source)
    if not isinstance(data, dict):
        problem = GuideProblem(
            "<root>",
            f"expected a mapping of guide fields at the top level, got {describe(data)}",
        )
        raise GuideError([problem], source=source)
    return data


def _yaml_message(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        message = f"invalid YAML at {_where(err.problem_mark)}: {err.problem or 'syntax error'}"
        if err.context and err.context_mark is not None:
            message += f" ({err.context} at {_where(err.context_mark)})"
        return message
    return f"invalid YAML: {err}"


def _where(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"
