"""Batch selection: which pool images to label next, in the order to show them.

Every strategy has one contract: it receives :class:`SelectionInputs` (the pool's
probabilities and embeddings, the labeled embeddings and labels, ``k``, a seed and
optionally the head or an ensemble) and returns ``min(k, n)`` distinct pool indices, first
to show first. :func:`select_batch` looks a strategy up by name and checks its answer.
Per-image scores for ranking and display stay in :mod:`models.uncertainty`.
"""

from __future__ import annotations

import numpy as np

from models.selection.diversity import select_badge, select_kcenter, select_typiclust
from models.selection.hybrid import (
    Selector,
    balance_classes,
    select_margin_clusters,
    select_typical_margin,
)
from models.selection.inputs import SelectionInputs
from models.selection.scored import (
    bald_scores,
    select_bald,
    select_entropy,
    select_least_confidence,
    select_margin,
    select_random,
)

# Chosen by bench/al_curve.py (see docs/benchmarks.md).
DEFAULT_STRATEGY = "typical_margin"

_SELECTORS: dict[str, Selector] = {
    "random": select_random,
    "least_confidence": select_least_confidence,
    "margin": select_margin,
    "entropy": select_entropy,
    "bald": select_bald,
    "badge": select_badge,
    "kcenter": select_kcenter,
    "typiclust": select_typiclust,
    "margin_clusters": select_margin_clusters,
    "typical_margin": select_typical_margin,
}


def available_selectors() -> list[str]:
    """Names accepted by :func:`get_selector` and :func:`select_batch`."""
    return sorted(_SELECTORS)


def get_selector(name: str) -> Selector:
    """The strategy called ``name``; ValueError listing the names otherwise."""
    try:
        return _SELECTORS[name]
    except KeyError:
        valid = ", ".join(available_selectors())
        raise ValueError(f"unknown selection strategy {name!r}; expected one of: {valid}") from None


def select_batch(name: str, inputs: SelectionInputs, *, class_balanced: bool = False) -> np.ndarray:
    """Indices ``(min(k, n),)`` of the pool chosen by strategy ``name``, first to show first.

    ``class_balanced`` re-picks the strategy's top candidates toward classes with few labels
    (see :func:`balance_classes`).
    """
    selector = get_selector(name)
    picks = balance_classes(selector, inputs) if class_balanced else selector(inputs)
    picks = np.asarray(picks, dtype=np.int64)
    expected = inputs.batch_size
    if (
        picks.shape != (expected,)
        or np.unique(picks).size != expected
        or picks.min(initial=0) < 0
        or picks.max(initial=0) >= inputs.n_pool
    ):
        raise RuntimeError(f"strategy {name!r} returned an invalid batch {picks.tolist()}")
    return picks


__all__ = [
    "DEFAULT_STRATEGY",
    "SelectionInputs",
    "Selector",
    "available_selectors",
    "bald_scores",
    "get_selector",
    "select_batch",
]
