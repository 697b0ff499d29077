"""The default strategy (cold start, then uncertainty spread over clusters); class balancing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from models.selection.diversity import select_typiclust
from models.selection.geometry import kmeans
from models.selection.inputs import SelectionInputs
from models.uncertainty import margin, rank_by_score

Selector = Callable[[SelectionInputs], np.ndarray]

# typical_margin uses TypiClust while fewer than this many labels per class are known.
COLD_START_LABELS_PER_CLASS = 3
# margin_clusters clusters the CANDIDATES_PER_PICK * k most uncertain images.
CANDIDATES_PER_PICK = 10
# balance_classes re-picks from the first BALANCE_CANDIDATES_PER_PICK * k of the base order.
BALANCE_CANDIDATES_PER_PICK = 5


def select_margin_clusters(inputs: SelectionInputs) -> np.ndarray:
    """Uncertain and diverse: the smallest-margin image of each of ``k`` clusters.

    The ``10 k`` images with the smallest margin are clustered by k-means into ``k`` groups;
    each group gives its smallest-margin image, so near-copies (which share a cluster) do
    not fill a batch. The batch is ordered by margin, most uncertain first.
    """
    scores = margin(inputs.probs)
    k = inputs.batch_size
    candidates = rank_by_score(scores, k=min(inputs.n_pool, CANDIDATES_PER_PICK * k))
    clusters, _ = kmeans(inputs.embeddings[candidates], k, seed=inputs.seed)
    # candidates are sorted by score, so the first member of each cluster is its best.
    _, first = np.unique(clusters, return_index=True)
    picks = list(candidates[np.sort(first)])
    if len(picks) < k:  # duplicate points can leave clusters empty
        rest = [int(i) for i in candidates if i not in set(picks)]
        picks.extend(rest[: k - len(picks)])
    return np.asarray(picks, dtype=np.int64)


def select_typical_margin(inputs: SelectionInputs) -> np.ndarray:
    """TypiClust while labels are scarce (fewer than 3 per class), then margin_clusters."""
    scarce = inputs.labeled_labels.size < COLD_START_LABELS_PER_CLASS * inputs.n_classes
    return select_typiclust(inputs) if scarce else select_margin_clusters(inputs)


def balance_classes(selector: Selector, inputs: SelectionInputs) -> np.ndarray:
    """Re-pick ``selector``'s batch so that rarely labeled classes come first.

    ``selector`` ranks ``5 k`` candidates; each slot then goes to the best-ranked candidate
    predicted (by ``probs``) to be of the class with the fewest labels so far, counting the
    labeled images and the slots already filled.
    """
    k = inputs.batch_size
    wide = replace(inputs, k=min(inputs.n_pool, BALANCE_CANDIDATES_PER_PICK * k))
    order = list(selector(wide))
    predicted = inputs.probs.argmax(axis=1)
    counts = np.bincount(inputs.labeled_labels, minlength=inputs.n_classes).astype(float)
    picks: list[int] = []
    while len(picks) < k and order:
        present = {int(predicted[i]) for i in order}
        rarest = min(present, key=lambda c: (counts[c], c))
        position = next(j for j, i in enumerate(order) if predicted[i] == rarest)
        picks.append(int(order.pop(position)))
        counts[rarest] += 1
    return np.asarray(picks, dtype=np.int64)
