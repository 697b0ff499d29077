"""Fixtures for the guide tests: a small valid guide and a way to collect its problems."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from guides import GuideError, GuideProblem, parse_guide
from models.datasets import load_fashion_mnist

_VALID: dict[str, Any] = {
    "name": "Tiny",
    "version": "1",
    "labels": [
        {
            "name": "T-shirt/top",
            "definition": "short sleeves, no collar",
            "hotkey": "1",
        },
        {"name": "Trouser", "definition": "two legs", "hotkey": "2"},
        {"name": "Ankle boot", "definition": "shaft above the ankle", "hotkey": "3"},
    ],
    "gold_tasks": [{"image": "test/00000.png", "expected_label": "Ankle boot"}],
    "class_priors": {"T-shirt/top": 0.5, "Trouser": 0.25, "Ankle boot": 0.25},
}


@pytest.fixture
def valid_data() -> dict[str, Any]:
    """A fresh copy of a small guide mapping that passes every check."""
    return copy.deepcopy(_VALID)


@pytest.fixture
def problems_for() -> Callable[[dict[str, Any]], list[GuideProblem]]:
    """Dump a guide mapping to YAML, parse it, and return the problems it must raise."""

    def collect(data: dict[str, Any]) -> list[GuideProblem]:
        with pytest.raises(GuideError) as caught:
            parse_guide(yaml.safe_dump(data, sort_keys=False), source="case.yaml")
        return caught.value.problems

    return collect


@pytest.fixture(scope="session")
def fashion_mnist_test_labels() -> bytes:
    """True labels of the Fashion-MNIST test split, one uint8 per image."""
    _, labels = load_fashion_mnist("test")
    assert labels.shape == (10_000,)
    return labels.astype("uint8").tobytes()
