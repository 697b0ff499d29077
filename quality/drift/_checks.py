"""Input checks shared by the drift tests: each raises ValueError naming what was expected."""

from __future__ import annotations

import numpy as np
import torch


def check_alpha(alpha: float, *, name: str = "alpha") -> float:
    """``alpha`` as a float strictly between 0 and 1."""
    value = float(alpha)
    if not 0.0 < value < 1.0:
        raise ValueError(f"expected {name} strictly between 0 and 1, got {alpha!r}")
    return value


def embedding_pair(
    reference: np.ndarray, new: np.ndarray, *, min_rows: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as finite float arrays ``(n_reference, D)`` and ``(n_new, D)``."""
    out = []
    for name, values in (("reference", reference), ("new", new)):
        array = np.asarray(values)
        if array.ndim != 2:
            raise ValueError(f"expected {name} embeddings of shape (n, D), got {array.shape}")
        if array.dtype.kind not in "iuf":
            raise ValueError(f"expected real-valued {name} embeddings, got dtype {array.dtype}")
        if array.shape[0] < min_rows:
            raise ValueError(f"expected at least {min_rows} {name} rows, got {array.shape[0]}")
        if array.shape[1] < 1:
            raise ValueError(f"expected at least one dimension in {name}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} embeddings contain NaN or infinite values")
        out.append(array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64))
    if out[0].shape[1] != out[1].shape[1]:
        raise ValueError(
            f"expected the same dimension D in both samples, got {out[0].shape[1]} (reference) "
            f"and {out[1].shape[1]} (new)"
        )
    return out[0], out[1]


def counts_vector(counts: np.ndarray, *, name: str, length: int | None = None) -> np.ndarray:
    """Non-negative integer counts ``(n_classes,)`` as int64."""
    array = np.asarray(counts)
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        shape = "(n_classes,)" if length is None else f"({length},)"
        raise ValueError(f"expected {name} of shape {shape}, got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"expected whole-number {name}, got {array!r}")
    array = array.astype(np.int64)
    if np.any(array < 0):
        raise ValueError(f"expected non-negative {name}, got {array!r}")
    return array


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when present and the CPU otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
