"""The image checks on one batch against a reference, combined into one verdict.

MMD and the KS screen run on the pooled sample's leading principal components (a PCA fitted
on reference and new together: a symmetric function of the pooled sample, so the permutation
and rank tests stay exact, and the components are decorrelated, which keeps the KS screen's
Simes test near its level). Novelty runs on the full embeddings (cosine distance). The batch
drifts when any of the three rejects at weighted Sidak-Holm's level (:func:`sidak_holm`): ``alpha``
false alarms per batch for independent tests (under the null the three are close to it),
at most ``-log(1 - alpha)`` whatever the dependence; the batch p-value is uniform under the
null for independent tests, where Holm's capped ``min p_i / w_i`` piles up at 1.

Default weights (:data:`IMAGE_WEIGHTS`): novelty 0.5, MMD 0.3, KS screen 0.2. Novelty is the
only test aimed at a few odd images in a large batch, which MMD and the screen average away;
MMD is the omnibus test for any shift of the distribution; the KS screen is a cheap
per-component screen that mostly duplicates MMD. Equal weights (plain Holm) cost the novelty
test a factor 3 on the batches only it can see. Weight ``w`` gives a test alone the level
``1 - (1 - alpha) ** w``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from sklearn.decomposition import PCA

from quality.drift._checks import check_alpha, embedding_pair
from quality.drift.combine import check_weights, sidak_holm
from quality.drift.mmd import mmd_test
from quality.drift.novelty import NOVELTY_QUANTILES, novelty_test
from quality.drift.results import ImageDriftResult
from quality.drift.screen import ks_screen

IMAGE_TESTS = ("mmd", "ks_screen", "novelty")
IMAGE_WEIGHTS: Mapping[str, float] = {"mmd": 0.3, "ks_screen": 0.2, "novelty": 0.5}


def pooled_projection(
    reference: np.ndarray, new: np.ndarray, *, n_components: int | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Both samples ``(m, D)``, ``(n, D)`` on the pooled sample's leading principal components.

    Returns ``(m, k)`` and ``(n, k)`` with ``k = min(n_components, D, m + n - 1)``; the inputs
    unchanged when ``n_components`` is None or at least ``D``.
    """
    x, y = embedding_pair(reference, new)
    if n_components is not None and n_components < 1:
        raise ValueError(f"expected n_components >= 1 or None, got {n_components}")
    if n_components is None or n_components >= x.shape[1]:
        return x, y
    k = min(n_components, x.shape[0] + y.shape[0] - 1)
    pca = PCA(n_components=k, random_state=seed).fit(np.concatenate([x, y]))
    return pca.transform(x).astype(np.float32), pca.transform(y).astype(np.float32)


def image_weights(weights: Mapping[str, float]) -> np.ndarray:
    """The weights of :data:`IMAGE_TESTS` as a vector ``(3,)``, checked to be positive, sum 1."""
    if sorted(weights) != sorted(IMAGE_TESTS):
        raise ValueError(f"expected weights for {IMAGE_TESTS}, got {sorted(weights)}")
    return check_weights([weights[name] for name in IMAGE_TESTS], len(IMAGE_TESTS))


def image_drift(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    alpha: float = 0.05,
    n_permutations: int = 1000,
    n_components: int | None = 64,
    novelty_quantiles: Sequence[float] = NOVELTY_QUANTILES,
    weights: Mapping[str, float] = IMAGE_WEIGHTS,
    components: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> ImageDriftResult:
    """MMD, KS screen and novelty of ``new: (n, D)`` against ``reference: (m, D)`` embeddings.

    ``p_value`` is the smallest weighted Sidak-Holm adjusted p-value of the three
    (``min 1 - (1 - p_i) ** (1 / w_i)``); ``statistic`` is the smallest raw p-value.
    ``weights`` maps ``"mmd"``, ``"ks_screen"`` and ``"novelty"`` to positive shares of
    ``alpha`` summing to 1 (default
    :data:`IMAGE_WEIGHTS`). The components keep their own verdicts at ``alpha``; the novelty
    component lists the novel images.

    ``components: (k, D)`` is a projection fitted beforehand on other images (for example
    the reference period's PCA); it replaces the pooled PCA and saves fitting it per batch.
    """
    x, y = embedding_pair(reference, new)
    alpha = check_alpha(alpha)
    shares = image_weights(weights)
    if components is None:
        xp, yp = pooled_projection(x, y, n_components=n_components, seed=seed)
    else:
        basis = np.asarray(components, dtype=np.float32)
        if basis.ndim != 2 or basis.shape[1] != x.shape[1]:
            raise ValueError(f"expected components (k, {x.shape[1]}), got {basis.shape}")
        xp, yp = x @ basis.T, y @ basis.T
    mmd = mmd_test(xp, yp, alpha=alpha, n_permutations=n_permutations, seed=seed, device=device)
    screen = ks_screen(xp, yp, alpha=alpha)
    novelty = novelty_test(x, y, alpha=alpha, quantiles=novelty_quantiles, device=device)
    components = [mmd.p_value, screen.p_value, novelty.p_value]
    p_value = float(sidak_holm(components, weights=shares).min())
    return ImageDriftResult(
        test="images",
        statistic=min(components),
        p_value=p_value,
        threshold=alpha,
        drifted=p_value <= alpha,
        n_reference=x.shape[0],
        n_new=y.shape[0],
        control="weighted sidak-holm over "
        + ", ".join(f"{name} ({share:g})" for name, share in zip(IMAGE_TESTS, shares, strict=True))
        + " (false alarms <= alpha per batch for independent tests, <= -log(1 - alpha) for any)",
        mmd=mmd,
        ks_screen=screen,
        novelty=novelty,
        n_components=xp.shape[1],
    )
