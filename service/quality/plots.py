"""Plots of quality reports as inline PNG data URIs (matplotlib, no display needed)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def data_uri(figure: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI; the figure is closed."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def label_histogram(
    labels: Sequence[str], counts: Sequence[int], priors: Sequence[float] | None
) -> str:
    """Share of each label against the guide's priors (when it has them)."""
    figure, axis = plt.subplots(figsize=(7, 3))
    x = np.arange(len(labels))
    total = max(sum(counts), 1)
    axis.bar(x - 0.2, np.asarray(counts) / total, width=0.4, label="observed")
    if priors is not None:
        weights = np.asarray(priors, dtype=float)
        axis.bar(x + 0.2, weights / max(weights.sum(), 1e-12), width=0.4, label="guide prior")
    axis.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    axis.set_ylabel("share")
    axis.legend(fontsize=8)
    return data_uri(figure)


def heatmap(matrix: np.ndarray, labels: Sequence[str], title: str) -> str:
    """Counts `matrix[row][column]` with row = consensus, column = given."""
    figure, axis = plt.subplots(figsize=(5, 4.2))
    image = axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.set_xlabel("given")
    axis.set_ylabel("consensus")
    axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, shrink=0.8)
    return data_uri(figure)


def rate_bars(keys: Sequence[str], rates: Sequence[float | None], title: str) -> str:
    """One bar per key (model versions, classes) with its rate in [0, 1]."""
    figure, axis = plt.subplots(figsize=(6, 2.8))
    values = [r if r is not None else 0.0 for r in rates]
    axis.bar(range(len(keys)), values, color="#4c72b0")
    axis.set_xticks(range(len(keys)), [k[:12] for k in keys], rotation=30, ha="right", fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_title(title, fontsize=9)
    return data_uri(figure)


def p_values(
    times: Sequence[str], series: dict[str, Sequence[float]], levels: Sequence[float]
) -> str:
    """p-values of repeated checks over time, with the level each check was held to."""
    figure, axis = plt.subplots(figsize=(7, 3))
    x = np.arange(len(times))
    for name, values in series.items():
        axis.plot(x, values, marker="o", label=name)
    axis.step(x, levels, where="mid", color="red", linestyle="--", label="level (alpha spent)")
    axis.set_yscale("log")
    axis.set_xticks(x, [t[:16] for t in times], rotation=30, ha="right", fontsize=7)
    axis.legend(fontsize=7)
    return data_uri(figure)


def projection(reference: np.ndarray, new: np.ndarray) -> str:
    """Reference and new points ``(n, 2)`` on the first two principal components."""
    figure, axis = plt.subplots(figsize=(5, 4))
    axis.scatter(reference[:, 0], reference[:, 1], s=6, alpha=0.5, label="reference")
    axis.scatter(new[:, 0], new[:, 1], s=8, alpha=0.7, label="new", color="#dd8452")
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.legend(fontsize=8)
    return data_uri(figure)
