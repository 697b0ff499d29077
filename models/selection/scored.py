"""Strategies that score each image alone and take the ``k`` highest scores."""

from __future__ import annotations

import numpy as np

from models.posterior import laplace_probs
from models.selection.inputs import SelectionInputs, candidate_rows, restrict
from models.uncertainty import (
    entropy,
    least_confidence,
    margin,
    mutual_information,
    rank_by_score,
)

# Posterior samples drawn for BALD when no ensemble is given.
BALD_SAMPLES = 20
# BALD scores at most this many pool images, a seeded random sample of a bigger pool.
BALD_MAX_CANDIDATES = 10_000


def select_random(inputs: SelectionInputs) -> np.ndarray:
    """A uniformly random batch: the baseline every other strategy must beat."""
    rng = np.random.default_rng(inputs.seed)
    return rng.permutation(inputs.n_pool)[: inputs.batch_size]


def select_least_confidence(inputs: SelectionInputs) -> np.ndarray:
    """The ``k`` images whose most likely class is least likely."""
    return rank_by_score(least_confidence(inputs.probs), k=inputs.batch_size)


def select_margin(inputs: SelectionInputs) -> np.ndarray:
    """The ``k`` images with the smallest gap between the two most likely classes."""
    return rank_by_score(margin(inputs.probs), k=inputs.batch_size)


def select_entropy(inputs: SelectionInputs) -> np.ndarray:
    """The ``k`` images with the highest predictive entropy."""
    return rank_by_score(entropy(inputs.probs), k=inputs.batch_size)


def select_bald(inputs: SelectionInputs) -> np.ndarray:
    """``k`` images drawn in proportion to their BALD score (power BALD, exponent 1).

    The score is the mutual information between an image's label and the head's weights.
    Taking the top ``k`` fills a batch with near-copies of one uncertain region, and lost to
    random labeling on ordinary data; drawing without replacement with probability
    proportional to the score (Kirsch et al. 2023, "Stochastic Batch Acquisition") keeps the
    preference for informative images and spreads the batch. Draws are Gumbel-top-k on the
    log scores, seeded by ``inputs.seed``; the batch is shown highest score first.

    A pool larger than ``BALD_MAX_CANDIDATES`` is scored on a seeded random sample of that
    size (see :func:`candidate_rows`): ``S`` posterior samples make scoring ``S`` times the
    cost of one prediction.
    """
    rows = candidate_rows(inputs.n_pool, BALD_MAX_CANDIDATES, inputs.seed)
    subset = inputs if rows.size == inputs.n_pool else restrict(inputs, rows)
    scores = bald_scores(subset)
    return rows[power_sample(scores, subset.batch_size, inputs.seed)]


def power_sample(scores: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` indices drawn without replacement with probability ``∝ scores``, best first."""
    rng = np.random.default_rng([seed, 0xBA1D])
    floor = np.finfo(np.float64).tiny  # a zero score is drawn last, never refused
    keys = np.log(np.maximum(np.asarray(scores, dtype=np.float64), floor))
    keys += rng.gumbel(size=len(keys))
    drawn = rank_by_score(keys, k=k)
    return drawn[np.argsort(-scores[drawn], kind="stable")]


def bald_scores(inputs: SelectionInputs) -> np.ndarray:
    """BALD score ``(n,)`` from ``inputs.member_probs``, or else the head's Laplace posterior.

    ValueError when neither an ensemble nor a head is given.
    """
    members = inputs.member_probs
    if members is None:
        if inputs.head is None:
            raise ValueError("bald needs member_probs (an ensemble) or the head")
        members = laplace_probs(
            inputs.head,
            inputs.labeled_embeddings,
            inputs.labeled_labels,
            inputs.embeddings,
            samples=BALD_SAMPLES,
            seed=inputs.seed,
        )
    return mutual_information(members)
