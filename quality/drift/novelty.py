"""New kinds of images: nearest-neighbour cosine distance to the reference, conformal p-values.

Each reference image's score is its distance to its nearest *other* reference image
(leave-one-out); a new image's score is its distance to the nearest reference image. The
conformal p-value of a new image is ``(1 + #{reference scores >= d}) / (n_reference + 1)``.
This equals the full-conformal p-value with the new image added to the reference (adding it
can only shrink a reference score to a distance that is already >= ``d``), so under no drift
each image's p-value is super-uniform, and Benjamini-Hochberg over a batch controls the false
discovery rate (conformal p-values are positively dependent; Bates et al. 2023).

Resolution: no p-value is below ``1 / (n_reference + 1)``, so BH can only list images when at
least ``n_new / (alpha (n_reference + 1))`` of them are that extreme. The batch verdict
therefore counts exceedances: the new images beyond the reference's ``1 - q`` quantile of
scores, for each ``q`` of a fixed grid (:data:`NOVELTY_QUANTILES`), tested by the exact null
law of the most significant count (:mod:`quality.drift.exceedance`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from quality.drift._checks import check_alpha, embedding_pair, resolve_device
from quality.drift.exceedance import scan_test, thresholds
from quality.drift.results import NoveltyResult

_CHUNK_ROWS = 1024
NOVELTY_QUANTILES = (0.005, 0.01, 0.02, 0.05, 0.1)
"""The upper quantiles of the reference's scores beyond which new images are counted."""


def _unit_rows(values: np.ndarray, device: torch.device) -> torch.Tensor:
    rows = torch.from_numpy(np.ascontiguousarray(values)).to(device=device, dtype=torch.float32)
    return torch.nn.functional.normalize(rows, dim=1)


def nearest_distances(
    reference: np.ndarray, new: np.ndarray, *, device: str | torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine nearest-neighbour distances: reference leave-one-out ``(m,)``, new ``(n,)``.

    Rows are L2-normalised; similarities come from chunked matmuls on ``device`` (CUDA when
    present). A zero row has distance 1 to everything.
    """
    x, y = embedding_pair(reference, new)
    where = resolve_device(device)
    ref = _unit_rows(x, where)
    loo = torch.empty(ref.shape[0], device=where)
    for start in range(0, ref.shape[0], _CHUNK_ROWS):
        sims = ref[start : start + _CHUNK_ROWS] @ ref.T
        rows = torch.arange(sims.shape[0], device=where)
        sims[rows, rows + start] = -torch.inf
        loo[start : start + sims.shape[0]] = sims.max(dim=1).values
    queries, n = _unit_rows(y, where), y.shape[0]
    best = torch.cat(
        [(queries[s : s + _CHUNK_ROWS] @ ref.T).max(dim=1).values for s in range(0, n, _CHUNK_ROWS)]
    )
    return _distances(loo), _distances(best)


def _distances(similarities: torch.Tensor) -> np.ndarray:
    return (1.0 - similarities.double()).clamp_(min=0.0).cpu().numpy()


def conformal_p_values(reference_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(1 + #{reference_scores >= s}) / (m + 1)`` for each of ``scores: (n,)``; ``(n,)``."""
    ordered = np.sort(np.asarray(reference_scores, dtype=np.float64))
    at_least = ordered.size - np.searchsorted(ordered, scores, side="left")
    return (1.0 + at_least) / (ordered.size + 1.0)


def novelty_test(
    reference: np.ndarray,
    new: np.ndarray,
    *,
    alpha: float = 0.05,
    quantiles: Sequence[float] = NOVELTY_QUANTILES,
    device: str | torch.device | None = None,
) -> NoveltyResult:
    """Find images of ``new: (n, D)`` unlike anything in ``reference: (m, D)``.

    Lists the images whose conformal p-value survives Benjamini-Hochberg at ``alpha``, and
    tests the batch by the numbers of images whose p-value is at most each of ``quantiles``
    (those beyond the reference's own ``1 - q`` quantile of nearest-neighbour distances),
    scanned as :func:`quality.drift.exceedance.scan_test` does. The result reports the most
    significant quantile; quantiles below ``1 / (m + 1)`` are dropped.
    """
    alpha = check_alpha(alpha)
    ref_scores, scores = nearest_distances(reference, new, device=device)
    m, n = ref_scores.size, scores.size
    ks = thresholds(quantiles, m)
    p_images = conformal_p_values(ref_scores, scores)
    adjusted = stats.false_discovery_control(p_images, method="bh")
    listed = np.flatnonzero(adjusted <= alpha)
    listed = listed[np.lexsort((-scores[listed], p_images[listed]))]
    counts = [int((p_images <= k / (m + 1)).sum()) for k in ks]
    p_value, best = scan_test(counts, n, ks, m)
    k = ks[best]
    return NoveltyResult(
        test="novelty",
        statistic=float(counts[best]),
        p_value=p_value,
        threshold=alpha,
        drifted=p_value <= alpha,
        n_reference=m,
        n_new=n,
        control="images: benjamini-hochberg on conformal p-values (false discovery rate); "
        "batch: exceedance counts over a scan of quantiles, exact null of the smallest",
        distances=scores,
        image_p_values=p_images,
        novel_indices=tuple(int(i) for i in listed),
        quantile=k / (m + 1),
        exceedance_distance=float(np.sort(ref_scores)[m - k]),
        n_exceeding=counts[best],
        expected_exceeding=n * k / (m + 1),
        smallest_image_p_value=1.0 / (m + 1),
        quantiles=tuple(j / (m + 1) for j in ks),
        exceedance_counts=tuple(counts),
    )
