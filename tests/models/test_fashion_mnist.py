import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.datasets import (
    FASHION_MNIST_CLASSES,
    find_fashion_mnist_dir,
    load_fashion_mnist,
    write_pngs,
)


def test_both_splits_have_the_published_shapes_and_balanced_labels(
    fashion_mnist,
) -> None:
    for images, labels, per_class in [
        (fashion_mnist.train_images, fashion_mnist.train_labels, 6000),
        (fashion_mnist.test_images, fashion_mnist.test_labels, 1000),
    ]:
        assert images.shape == (10 * per_class, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (10 * per_class,) and labels.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(labels), np.full(10, per_class))
        assert images.max() == 255 and images.min() == 0
    assert len(FASHION_MNIST_CLASSES) == 10


def test_directory_argument_is_searched_first(fashion_mnist, tmp_path: Path) -> None:
    for path in find_fashion_mnist_dir().glob("*.gz"):
        shutil.copy(path, tmp_path / path.name)
    assert find_fashion_mnist_dir(tmp_path) == tmp_path
    images, _ = load_fashion_mnist("test", directory=tmp_path)
    np.testing.assert_array_equal(images, fashion_mnist.test_images)


def test_wrong_magic_number_is_rejected(fashion_mnist, tmp_path: Path) -> None:
    for path in find_fashion_mnist_dir().glob("*.gz"):
        shutil.copy(path, tmp_path / path.name)
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(struct.pack(">IIII", 2049, 1, 28, 28) + bytes(784))
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        load_fashion_mnist("test", directory=tmp_path)


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_fashion_mnist("validation")  # type: ignore[arg-type]


def test_write_pngs_round_trips_and_is_idempotent(fashion_mnist, tmp_path: Path) -> None:
    images = fashion_mnist.test_images[:5]
    names = ["a", "b.png", "c", "d", "e"]
    paths = write_pngs(images, tmp_path, names=names)
    assert [path.name for path in paths] == [
        "a.png",
        "b.png",
        "c.png",
        "d.png",
        "e.png",
    ]
    for path, image in zip(paths, images, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    stamps = [path.stat().st_mtime_ns for path in paths]
    paths[2].write_text("damaged")
    again = write_pngs(images, tmp_path, names=names)
    assert again == paths
    assert [path.stat().st_mtime_ns for path in paths[:2]] == stamps[:2]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2])), images[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_write_pngs_checks_its_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 2 names"):
        write_pngs(np.zeros((2, 4, 4), np.uint8), tmp_path, names=["a"])
    with pytest.raises(ValueError, match="uint8"):
        write_pngs(np.zeros((2, 4, 4), np.float32), tmp_path, names=["a", "b"])
