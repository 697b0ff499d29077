"""Shared fixtures: real Fashion-MNIST images on disk and service settings in a temp dir."""

from __future__ import annotations

import pytest

from models.datasets import load_fashion_mnist, write_pngs
from tests.helpers import POOL_SIZE, ImagePool


@pytest.fixture(scope="session")
def fashion_pool(tmp_path_factory: pytest.TempPathFactory) -> ImagePool:
    """240 real Fashion-MNIST test images as PNGs, plus a truncated PNG and a text file."""
    root = tmp_path_factory.mktemp("images")
    folder = root / "pool"
    images, labels = load_fashion_mnist("test")
    write_pngs(images[:POOL_SIZE], folder, names=[f"{i:05d}.png" for i in range(POOL_SIZE)])
    truncated = folder / "zz-truncated.png"
    truncated.write_bytes((folder / "00000.png").read_bytes()[:60])
    notes = folder / "zz-notes.png"
    notes.write_text("this is not an image\n")
    return ImagePool(
        root=root,
        folder=folder,
        labels=[int(x) for x in labels[:POOL_SIZE]],
        broken=[truncated, notes],
    )
