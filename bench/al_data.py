"""The label-efficiency benchmark's data sets, as pool and held-out feature arrays.

Fashion-MNIST: frozen EfficientNet-Lite0 embeddings (``bench/fashion_features.py``) of the
60,000 training images as the pool and the official 10,000 test images held out, projected on
the pool's top principal axes. sklearn's handwritten digits: raw 8x8 pixels, 1,297 pool / 500
held out, a seeded split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DataSet:
    name: str
    pool_x: np.ndarray
    pool_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.pool_y.max()) + 1


def fashion(dims: int) -> DataSet:
    from fashion_features import fashion_embeddings

    x, y = fashion_embeddings("train", 60000)
    test_x, test_y = fashion_embeddings("test", 10000)
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    axes = principal_axes(x - mean, dims)
    return DataSet("fashion-mnist", (x - mean) @ axes.T, y, (test_x - mean) @ axes.T, test_y)


def principal_axes(centred: np.ndarray, dims: int) -> np.ndarray:
    """The top ``dims`` principal axes ``(dims, D)`` by randomized SVD (two power steps)."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(centred @ rng.standard_normal((centred.shape[1], dims + 16)))
    for _ in range(2):
        basis, _ = np.linalg.qr(centred @ (centred.T @ basis))
    return np.linalg.svd(basis.T @ centred, full_matrices=False)[2][:dims]


def digits() -> DataSet:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(12345).permutation(len(y))
    x, y = x[order].astype(np.float64), y[order].astype(np.int64)
    return DataSet("sklearn-digits", x[500:], y[500:], x[:500], y[:500])
