"""Image sets for the drift tests: Fashion-MNIST batches like the pool, and shifted ones.

`same`: 40 other Fashion-MNIST test images; `unseen`: 40 handwritten digits (a kind of image
the guide does not have); `planted`: 15 Fashion-MNIST images and 5 digits named `odd-*` (a
batch small enough for Benjamini-Hochberg to list 5 images whose conformal p-values are
about 1/241).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from models.datasets import load_fashion_mnist, write_pngs
from service.core.settings import QualitySettings, Settings
from tests.helpers import POOL_SIZE, ImagePool, make_settings


@dataclass(frozen=True)
class DriftSets:
    root: Path
    same: Path
    unseen: Path
    planted: Path
    planted_names: list[str]


def digits_28(count: int, offset: int) -> np.ndarray:
    """`count` sklearn digits ``(count, 28, 28)`` uint8, white on black like Fashion-MNIST."""
    digits = load_digits().images[offset : offset + count]  # (n, 8, 8) in [0, 16]
    big = np.kron(digits, np.ones((3, 3)))  # (n, 24, 24)
    padded = np.pad(big, ((0, 0), (2, 2), (2, 2)))
    return np.clip(padded * 16, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def drift_sets(tmp_path_factory: pytest.TempPathFactory) -> DriftSets:
    root = tmp_path_factory.mktemp("drift-sets")
    images, _ = load_fashion_mnist("test")
    start = POOL_SIZE + 60  # never in the pool
    same = root / "same"
    write_pngs(images[start : start + 40], same, names=[f"s{i:03d}.png" for i in range(40)])
    unseen = root / "unseen"
    write_pngs(digits_28(40, 0), unseen, names=[f"d{i:03d}.png" for i in range(40)])
    planted = root / "planted"
    fashion = images[start + 40 : start + 55]
    write_pngs(fashion, planted, names=[f"f{i:03d}.png" for i in range(15)])
    odd = [f"odd-{i}.png" for i in range(5)]
    write_pngs(digits_28(5, 100), planted, names=odd)
    return DriftSets(root, same, unseen, planted, odd)


def drift_settings(
    tmp_path: Path, pool: ImagePool, sets: DriftSets, notify_url: str | None, **quality: object
) -> Settings:
    """Settings with a short alpha-spending horizon (5 checks) and few permutations."""
    values: dict[str, object] = {
        "drift_permutations": 199,
        "drift_max_checks": 5,
        "drift_sync_max_images": 30,
        "notify_url": notify_url,
    }
    values.update(quality)
    return make_settings(
        tmp_path,
        pool,
        allowed_roots=[pool.root, sets.root],
        quality=QualitySettings(**values),  # type: ignore[arg-type]
    )
