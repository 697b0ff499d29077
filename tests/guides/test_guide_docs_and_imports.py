"""The format document stays true to the code, and guides/ keeps to its allowed imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import guides
from guides import (
    FlowPolicy,
    GoldTask,
    Guide,
    LabelDefinition,
    OverlapPolicy,
    QualityThresholds,
    TrainingPolicy,
    parse_guide,
)

ROOT = Path(__file__).resolve().parents[2]
FORMAT_DOC = ROOT / "docs" / "guide-format.md"
ALLOWED_THIRD_PARTY = {"pydantic", "yaml"}


def test_minimal_example_in_the_format_doc_parses() -> None:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert example is not None
    guide = parse_guide(example.group(1))
    assert guide.label_names == ["Cat", "Dog"]
    assert guide.label_index("Dog") == 1


@pytest.mark.parametrize(
    "model",
    [
        Guide,
        LabelDefinition,
        GoldTask,
        QualityThresholds,
        OverlapPolicy,
        FlowPolicy,
        TrainingPolicy,
    ],
)
def test_format_doc_describes_every_field(model: type) -> None:
    text = FORMAT_DOC.read_text(encoding="utf-8")
    for field in model.model_fields:
        assert f"| `{field}` |" in text, f"{model.__name__}.{field} is not documented"


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_guides_imports_only_pydantic_yaml_and_the_standard_library() -> None:
    package = Path(guides.__file__).parent
    for path in sorted(package.glob("*.py")):
        foreign = _imported_roots(path) - set(sys.stdlib_module_names) - {"guides", "__future__"}
        assert foreign <= ALLOWED_THIRD_PARTY, f"{path.name} imports {sorted(foreign)}"
