"""Which batch-selection strategy a round uses, and what each one sees of a large pool.

Names are those of `models.selection` (one contract: the pool's probabilities and
embeddings, the labeled embeddings and labels, k and a seed in; indices in showing order
out). A round request names one, or gets `models.selection.DEFAULT_STRATEGY`.

**Candidates.** A strategy sees at most `MAX_CANDIDATES` pool images at once, so memory stays
bounded whatever the pool's size. Up to that size it sees the whole pool. Above it:
- a per-image score strategy (entropy, margin, least_confidence) sees the `MAX_CANDIDATES`
  images its own score rates highest, found by `models.rerank` streaming the store in chunks
  (its top k is among them, so the batch is the one the whole pool would give);
- random sees a uniform sample of that size drawn with the round's seed;
- every batch strategy (BALD, BADGE, k-center, TypiClust and the hybrids) sees the
  `MAX_CANDIDATES` images of highest entropy.

**Scores shown.** Every round item keeps a per-image score for ranking and display: the
strategy's own score when it has one, entropy otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from guides.schema import SelectionPolicy
from models.selection import DEFAULT_STRATEGY, available_selectors
from models.uncertainty import entropy, least_confidence, margin
from service.core.errors import UnknownStrategy

MAX_CANDIDATES = 20_000
ScoreFunction = Callable[[np.ndarray], np.ndarray]
_OWN_SCORES: dict[str, ScoreFunction] = {
    "entropy": entropy,
    "margin": margin,
    "least_confidence": least_confidence,
}


def available_strategies() -> list[str]:
    """Names a round may ask for."""
    return available_selectors()


def resolve_strategy(name: str | None, policy: SelectionPolicy | None = None) -> str:
    """`name`, else the guide's `selection.strategy`, else the default the benchmark chose.

    Raises `UnknownStrategy` listing the names for one that is not registered.
    """
    guide_choice = policy.strategy if policy is not None else None
    chosen = name or guide_choice or DEFAULT_STRATEGY
    if chosen not in available_strategies():
        where = "the guide's selection.strategy " if name is None else "strategy "
        raise UnknownStrategy(
            f"unknown {where}{chosen!r}", details={"available": available_strategies()}
        )
    return chosen


def display_score(name: str) -> ScoreFunction:
    """The per-image score stored on round items of strategy `name` (higher: less sure)."""
    return _OWN_SCORES.get(name, entropy)


def samples_uniformly(name: str) -> bool:
    """Whether a pool larger than `MAX_CANDIDATES` is cut to a random sample for `name`."""
    return name == "random"
