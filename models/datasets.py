"""Real image sources that need no network: Fashion-MNIST from its Debian package.

The idx files are parsed here (a gzip stream, a big-endian header, then uint8 pixels), so
no dataset library is needed.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


def find_fashion_mnist_dir(directory: Path | None = None) -> Path:
    """Return a directory holding the four Fashion-MNIST idx ``.gz`` files.

    ``directory`` is tried first, then the Debian package's location. Raises
    :class:`FileNotFoundError` saying how to install the data when neither has them.
    """
    candidates = [Path(directory)] if directory is not None else []
    candidates.append(DEBIAN_FASHION_MNIST_DIR)
    needed = [name for pair in _FILES.values() for name in pair]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in needed):
            return candidate
    searched = ", ".join(str(candidate) for candidate in candidates)
    raise FileNotFoundError(
        f"Fashion-MNIST idx files not found in {searched}; install them with "
        "`apt-get install dataset-fashion-mnist` or pass the directory that holds them"
    )


def load_fashion_mnist(
    split: Literal["train", "test"], *, directory: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split: images ``(n, 28, 28)`` uint8 and labels ``(n,)`` uint8 in [0, 10)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = find_fashion_mnist_dir(directory)
    images_name, labels_name = _FILES[split]
    images = _read_idx(root / images_name, magic=_IMAGES_MAGIC, n_dims=3)
    labels = _read_idx(root / labels_name, magic=_LABELS_MAGIC, n_dims=1)
    if len(images) != len(labels):
        raise ValueError(f"{split}: {len(images)} images but {len(labels)} labels")
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{split}: label {int(labels.max())} is out of range")
    return images, labels


def _read_idx(path: Path, *, magic: int, n_dims: int) -> np.ndarray:
    """Parse a gzip idx file of uint8 values: magic, ``n_dims`` sizes, then the data."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    header_size = 4 * (1 + n_dims)
    if len(data) < header_size:
        raise ValueError(f"{path}: too short for an idx header")
    found_magic, *shape = struct.unpack(f">{1 + n_dims}I", data[:header_size])
    if found_magic != magic:
        raise ValueError(f"{path}: magic number {found_magic}, expected {magic}")
    expected = int(np.prod(shape))
    if len(data) - header_size != expected:
        raise ValueError(f"{path}: {len(data) - header_size} data bytes, expected {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def write_pngs(images: np.ndarray, directory: Path, *, names: Sequence[str]) -> list[Path]:
    """Write ``images`` ``(n, H, W)`` uint8 as grey PNG files ``directory / names[i]``.

    ``.png`` is appended to names without a suffix. A file that already decodes to an image
    of the right size is left as it is, so calling this twice writes nothing the second
    time. Each file is written to a temporary name and then renamed into place.
    """
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected images (n, H, W) uint8, got {images.shape} {images.dtype}")
    if len(names) != len(images):
        raise ValueError(f"expected {len(images)} names, got {len(names)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    height, width = images.shape[1:]
    paths = []
    for image, name in zip(images, names, strict=True):
        path = directory / (name if Path(name).suffix else f"{name}.png")
        if not _has_size(path, (width, height)):
            _write_atomically(Image.fromarray(image), path)
        paths.append(path)
    return paths


def _has_size(path: Path, size: tuple[int, int]) -> bool:
    try:
        with Image.open(path) as image:
            return image.size == size
    except (OSError, SyntaxError, ValueError):
        return False


def _write_atomically(image: Image.Image, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
