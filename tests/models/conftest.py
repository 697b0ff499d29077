"""Shared, session-cached fixtures for the image model tests: real Fashion-MNIST images.

The full data set comes from the Debian package ``dataset-fashion-mnist``. Where it is not
installed (a bare GPU machine), or ``ACTIVELABEL_TEST_FASHION_MNIST=sample`` asks for it, the
first 128 images of each split, shipped in ``data/fashion-mnist-sample`` (same idx format),
serve the tests that need no more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.datasets import DEBIAN_FASHION_MNIST_DIR, load_fashion_mnist, write_pngs
from models.embedding import embed_images

N_PROBE_TRAIN = 300
N_PROBE_TEST = 300
SAMPLE_DIR = Path(__file__).parent / "data" / "fashion-mnist-sample"


@dataclass(frozen=True)
class FashionMnist:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


@dataclass(frozen=True)
class ProbeData:
    """Pixels, labels and EfficientNet-Lite0 embeddings of a seeded train/test sample."""

    train_pixels: np.ndarray
    train_labels: np.ndarray
    train_embeddings: np.ndarray
    test_pixels: np.ndarray
    test_labels: np.ndarray
    test_embeddings: np.ndarray
    backbone_id: str


def fashion_mnist_dir() -> Path:
    """The Debian package's directory, or the shipped sample's where it is missing."""
    wanted = os.environ.get("ACTIVELABEL_TEST_FASHION_MNIST", "full")
    full = (DEBIAN_FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
    return DEBIAN_FASHION_MNIST_DIR if full and wanted != "sample" else SAMPLE_DIR


@pytest.fixture(scope="session")
def fashion_mnist() -> FashionMnist:
    directory = fashion_mnist_dir()
    train_images, train_labels = load_fashion_mnist("train", directory=directory)
    test_images, test_labels = load_fashion_mnist("test", directory=directory)
    return FashionMnist(train_images, train_labels, test_images, test_labels)


@pytest.fixture(scope="session")
def lite0() -> Backbone:
    """EfficientNet-Lite0 with its shipped ImageNet weights at its native 224 px."""
    return load_backbone(BackboneSpec())


@pytest.fixture(scope="session")
def probe_data(
    fashion_mnist: FashionMnist,
    lite0: Backbone,
    tmp_path_factory: pytest.TempPathFactory,
) -> ProbeData:
    rng = np.random.default_rng(0)
    train = rng.choice(len(fashion_mnist.train_labels), N_PROBE_TRAIN, replace=False)
    test = rng.choice(len(fashion_mnist.test_labels), N_PROBE_TEST, replace=False)
    directory = tmp_path_factory.mktemp("probe")
    paths = write_pngs(
        fashion_mnist.train_images[train],
        directory,
        names=[f"train-{i}" for i in train],
    ) + write_pngs(fashion_mnist.test_images[test], directory, names=[f"test-{i}" for i in test])
    result = embed_images(paths, lite0, batch_size=32)
    assert not result.failures
    return ProbeData(
        train_pixels=fashion_mnist.train_images[train],
        train_labels=fashion_mnist.train_labels[train].astype(np.int64),
        train_embeddings=result.embeddings[:N_PROBE_TRAIN],
        test_pixels=fashion_mnist.test_images[test],
        test_labels=fashion_mnist.test_labels[test].astype(np.int64),
        test_embeddings=result.embeddings[N_PROBE_TRAIN:],
        backbone_id=lite0.backbone_id,
    )


@pytest.fixture
def png_pool(fashion_mnist: FashionMnist, tmp_path: Path) -> list[Path]:
    """64 Fashion-MNIST test images as grey PNG files."""
    return write_pngs(
        fashion_mnist.test_images[:64],
        tmp_path,
        names=[f"img-{i:03d}" for i in range(64)],
    )
