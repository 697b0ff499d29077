"""What every batch-selection strategy receives: :class:`SelectionInputs`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from models.head import TrainedHead

_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SelectionInputs:
    """The pool to choose from and what is already labeled.

    - ``probs: (n, C)``: the current head's class probabilities for the pool;
    - ``embeddings: (n, D)``: the pool's embeddings (distances are Euclidean in this space);
    - ``labeled_embeddings: (m, D)`` and ``labeled_labels: (m,)`` in [0, C); ``m`` may be 0;
    - ``k``: how many to choose (at most ``n`` are returned);
    - ``seed``: every random choice derives from it;
    - ``head``: the head behind ``probs``, for strategies that need its posterior (BALD);
    - ``member_probs: (S, n, C)``: probabilities of an ensemble or of posterior samples,
      used by BALD instead of the head's approximate posterior when given.

    Arrays are validated and stored as float64 / int64 copies.
    """

    probs: np.ndarray
    embeddings: np.ndarray
    labeled_embeddings: np.ndarray
    labeled_labels: np.ndarray
    k: int
    seed: int = 0
    head: TrainedHead | None = None
    member_probs: np.ndarray | None = None

    def __post_init__(self) -> None:
        probs = _probabilities(self.probs, "probs")
        n, n_classes = probs.shape
        embeddings = _matrix(self.embeddings, "embeddings", rows=n)
        labeled = _matrix(self.labeled_embeddings, "labeled_embeddings", dim=embeddings.shape[1])
        labels = np.asarray(self.labeled_labels)
        if labels.shape != (labeled.shape[0],) or (
            labels.size and not np.issubdtype(labels.dtype, np.integer)
        ):
            raise ValueError(
                f"expected integer labeled_labels of shape ({labeled.shape[0]},), "
                f"got {labels.dtype} {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"expected labeled_labels in [0, {n_classes})")
        if isinstance(self.k, bool) or not isinstance(self.k, int | np.integer) or self.k < 1:
            raise ValueError(f"expected k >= 1, got {self.k!r}")
        if self.head is not None and self.head.embedding_dim != embeddings.shape[1]:
            raise ValueError(
                f"expected a head for {embeddings.shape[1]}-d embeddings, "
                f"got one for {self.head.embedding_dim}-d"
            )
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "labeled_embeddings", labeled)
        object.__setattr__(self, "labeled_labels", labels.astype(np.int64))
        object.__setattr__(self, "k", int(self.k))
        if self.member_probs is not None:
            members = np.asarray(self.member_probs, dtype=np.float64)
            if members.ndim != 3 or members.shape[1:] != probs.shape or members.shape[0] < 2:
                raise ValueError(
                    f"expected member_probs of shape (S >= 2, {n}, {n_classes}), "
                    f"got {members.shape}"
                )
            flat = _probabilities(members.reshape(-1, n_classes), "member_probs")
            object.__setattr__(self, "member_probs", flat.reshape(members.shape))

    @property
    def n_pool(self) -> int:
        return int(self.probs.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def batch_size(self) -> int:
        """How many indices a strategy returns: ``min(k, n)``."""
        return min(self.k, self.n_pool)


def candidate_rows(n_pool: int, limit: int, seed: int) -> np.ndarray:
    """Sorted pool rows ``(min(n_pool, limit),)`` to score: all of them, or a seeded sample.

    Strategies whose cost grows with the pool times something large (posterior samples,
    the labeled set) score a random subset of a big pool, as baal's ``max_sample`` does.
    """
    if limit < 1:
        raise ValueError(f"expected limit >= 1, got {limit}")
    if n_pool <= limit:
        return np.arange(n_pool)
    return np.sort(np.random.default_rng([seed, n_pool]).choice(n_pool, limit, replace=False))


def restrict(inputs: SelectionInputs, rows: np.ndarray) -> SelectionInputs:
    """``inputs`` with the pool cut to ``rows`` (probabilities, embeddings, members alike)."""
    members = None if inputs.member_probs is None else inputs.member_probs[:, rows]
    return replace(
        inputs, probs=inputs.probs[rows], embeddings=inputs.embeddings[rows], member_probs=members
    )


def _matrix(
    values: np.ndarray, name: str, *, rows: int | None = None, dim: int | None = None
) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1 and x.size == 0 and dim is not None:
        x = x.reshape(0, dim)
    expected_rows = "n" if rows is None else str(rows)
    expected_dim = "D" if dim is None else str(dim)
    if (
        x.ndim != 2
        or (rows is not None and x.shape[0] != rows)
        or (dim is not None and x.shape[1] != dim)
        or x.shape[1] == 0
    ):
        raise ValueError(
            f"expected {name} of shape ({expected_rows}, {expected_dim}), got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"expected finite {name}, got NaN or infinity")
    return x


def _probabilities(values: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 1:
        raise ValueError(f"expected {name} of shape (n >= 1, n_classes), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"expected finite non-negative {name}")
    worst = float(np.abs(p.sum(axis=1) - 1.0).max())
    if worst > _SUM_TOLERANCE:
        raise ValueError(f"expected rows of {name} summing to 1, one is off by {worst:.4g}")
    return p
