"""`make test-gpu` runs on a GPU machine with no web stack and no Debian data package.

The models suite is collected, and its device-pipeline tests run on the CPU, in a Python
whose import system refuses the web and service stack, with the shipped Fashion-MNIST
sample in place of the Debian package.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFUSED = ("fastapi", "starlette", "pydantic", "sqlalchemy", "label_studio_sdk", "uvicorn")
BLOCKER = f"""
import sys
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec

REFUSED = {REFUSED!r}


class Refuse(Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {{spec.name!r}}", name=spec.name)

    def exec_module(self, module):
        pass


class RefuseWebStack(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        return ModuleSpec(name, Refuse()) if name.split(".")[0] in REFUSED else None


sys.meta_path.insert(0, RefuseWebStack())
"""
# The device pipeline (damaged-JPEG corpus included) with device="cpu"
DEVICE_PIPELINE_TESTS = ["tests/models/test_gpu_decode.py", "tests/models/test_damaged_jpegs.py"]
GPU_SUITE = ["-m", "pytest", "tests/models", "--confcutdir=tests/models", "-p", "no:cacheprovider"]


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("bare-python")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(folder), "ACTIVELABEL_TEST_FASHION_MNIST": "sample"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_environment_cannot_import_the_web_stack(bare_env: dict[str, str]) -> None:
    probe = f"""
import importlib
for name in {REFUSED!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    raise SystemExit(name + " imported")
import models.gpu_decode, models.embedding, models.training
"""
    result = _run(["-c", probe], bare_env)
    assert result.returncode == 0, result.stderr


def test_the_gpu_suite_collects_and_its_cpu_parts_pass_without_the_web_stack(
    bare_env: dict[str, str],
) -> None:
    collected = _run([*GPU_SUITE, "-m", "gpu", "--collect-only", "-q"], bare_env)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    gpu_tests = [line for line in collected.stdout.splitlines() if "::test_" in line]
    assert len(gpu_tests) >= 3 and any("test_gpu_decode.py" in t for t in gpu_tests), gpu_tests
    assert "error" not in collected.stdout.lower()
    ran = _run(
        [*GPU_SUITE[:2], *DEVICE_PIPELINE_TESTS, *GPU_SUITE[3:], "-m", "not gpu", "-q"],
        bare_env,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout and "failed" not in ran.stdout and "error" not in ran.stdout
