"""The trained classification head: a linear softmax layer over backbone embeddings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

HEAD_KEYS = ("weight", "bias")


@dataclass
class TrainedHead:
    """A linear head ``logits = embeddings @ weight.T + bias`` and what it was trained on.

    ``state`` holds ``weight: (n_classes, embedding_dim)`` and ``bias: (n_classes,)`` float32
    tensors, with the feature standardisation used in training already folded in.
    ``backbone_id`` names the backbone whose embeddings it expects. ``version`` is derived
    from the backbone, the class names and the weights, so identical training gives an
    identical version. ``temperature`` divides the logits before the softmax (1.0 until the
    head is calibrated, see :mod:`models.calibration`); it is part of the version only when
    it is not 1.0, so uncalibrated heads keep the versions they always had.
    """

    state: dict[str, torch.Tensor]
    class_names: list[str]
    backbone_id: str
    embedding_dim: int
    version: str
    n_train: int
    metrics: dict[str, float]
    created_at: str
    temperature: float = 1.0

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """Class scores ``(n_images, n_classes)`` float64 for ``embeddings: (n_images, D)``."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.embedding_dim:
            raise ValueError(
                f"expected embeddings of shape (n_images, {self.embedding_dim}), got {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("expected finite embeddings, got NaN or infinity")
        weight = self.state["weight"].detach().cpu().numpy().astype(np.float64)
        bias = self.state["bias"].detach().cpu().numpy().astype(np.float64)
        return x @ weight.T + bias

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n_images, n_classes)`` float32, each row summing to 1.

        ``softmax(logits / temperature)``.
        """
        logits = self.logits(embeddings) / self.temperature
        logits -= logits.max(axis=1, keepdims=True, initial=-np.inf)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def head_version(
    backbone_id: str,
    class_names: Sequence[str],
    state: Mapping[str, torch.Tensor],
    *,
    temperature: float = 1.0,
) -> str:
    """``"h-"`` and 10 hex digits of a SHA-256 over the backbone, classes and weights.

    A ``temperature`` other than 1.0 is hashed too (as its float64 bytes).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([backbone_id, list(class_names)]).encode())
    for key in HEAD_KEYS:
        tensor = state[key].detach().cpu().contiguous().to(torch.float32)
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    if temperature != 1.0:
        digest.update(b"temperature")
        digest.update(np.float64(temperature).tobytes())
    return "h-" + digest.hexdigest()[:10]
