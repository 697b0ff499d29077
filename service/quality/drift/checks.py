"""The drift checks on arrays, turned into report entries (`CheckOut`, novel images, plots).

Each check runs at the guide's drift significance `alpha`; the caller then holds its
p-value to the level its false-alarm control gives (alpha spending for repeated checks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import PCA

from guides import Guide
from quality.drift import (
    IMAGE_WEIGHTS,
    AnnotatorDriftResult,
    DriftResult,
    ImageDriftResult,
    LabelDriftResult,
    PredictionDriftResult,
    annotator_drift,
    image_drift,
    label_drift,
    prediction_drift,
)
from service.quality.drift.schemas import (
    AnnotatorShiftOut,
    CheckKind,
    CheckOut,
    LabelCounts,
    NovelImage,
    Projection,
)
from service.quality.schemas import num

MIN_REFERENCE = 20  # novelty needs the reference's own 5% tail to hold one image
MIN_NEW = 5
MIN_LABELS = 10
PROJECTION_POINTS = 400  # per side, in the report's 2-D plot
MMD_MAX_PERMUTATIONS = 10_000


def permutations_for(level: float, configured: int) -> int:
    """Permutations for an MMD test that must be able to reach `level` on its own.

    The image check is a weighted Sidak-Holm over three tests, so MMD alone decides at
    ``1 - (1 - level) ** weight >= weight * level``; a permutation p-value is at least
    ``1 / (P + 1)``: so ``P >= 1 / (weight * level) - 1`` suffices, capped.
    """
    if level <= 0:
        return configured
    needed = math.ceil(1.0 / (IMAGE_WEIGHTS["mmd"] * level)) - 1
    return int(min(MMD_MAX_PERMUTATIONS, max(configured, needed)))


def skipped(check: CheckKind, reason: str, *, n_reference: int = 0, n_new: int = 0) -> CheckOut:
    return CheckOut(
        check=check, status="skipped", reason=reason, n_reference=n_reference, n_new=n_new
    )


def check_out(check: CheckKind, result: DriftResult, components: dict[str, float]) -> CheckOut:
    return CheckOut(
        check=check,
        status="ran",
        statistic=num(result.statistic),
        p_value=num(result.p_value),
        level=result.threshold,
        drifted=bool(result.drifted),
        n_reference=result.n_reference,
        n_new=result.n_new,
        control=result.control,
        components={name: num(p) for name, p in components.items()},
    )


def images_check(
    reference: np.ndarray, new: np.ndarray, *, alpha: float, permutations: int, seed: int = 0
) -> ImageDriftResult:
    """MMD, KS screen and novelty of ``new: (n, D)`` against ``reference: (m, D)``."""
    return image_drift(reference, new, alpha=alpha, n_permutations=permutations, seed=seed)


def image_components(result: ImageDriftResult) -> dict[str, float]:
    return {
        "mmd": result.mmd.p_value,
        "ks_screen": result.ks_screen.p_value,
        "novelty": result.novelty.p_value,
    }


def predictions_check(
    reference_probs: np.ndarray, new_probs: np.ndarray, *, alpha: float
) -> PredictionDriftResult:
    """Predicted classes and confidences, ``(m, C)`` against ``(n, C)``."""
    return prediction_drift(reference_probs, new_probs, alpha=alpha)


def prediction_components(result: PredictionDriftResult) -> dict[str, float]:
    return {"classes": result.classes.p_value, "confidence": result.confidence.p_value}


def novel_images(
    result: ImageDriftResult, *, ids: Sequence[int | None], names: Sequence[str | None]
) -> list[NovelImage]:
    """The images novelty kept, most novel first, named by id or file name."""
    novelty = result.novelty
    return [
        NovelImage(
            index=i,
            image_id=ids[i],
            name=names[i],
            distance=float(novelty.distances[i]),
            p_value=float(novelty.image_p_values[i]),
        )
        for i in novelty.novel_indices
    ]


def labels_check(labels: list[str], guide: Guide) -> tuple[LabelDriftResult, LabelCounts]:
    """Confirmed labels against the guide's class priors (the guide must have priors)."""
    result = label_drift(labels, guide)
    counts = LabelCounts(
        labels=list(result.label_names),
        observed=[int(c) for c in result.observed],
        priors=guide.prior_vector(),
        impossible=list(result.impossible_labels),
    )
    return result, counts


def annotators_check(
    labels: np.ndarray, annotators: Sequence[str], *, n_classes: int, alpha: float
) -> tuple[AnnotatorDriftResult, list[AnnotatorShiftOut]]:
    """Each annotator's labels ``(n,)`` against everyone else's in the window (Holm)."""
    result = annotator_drift(labels, annotators, n_classes=n_classes, alpha=alpha)
    rows = [
        AnnotatorShiftOut(
            annotator=shift.annotator,
            n_labels=shift.n_labels,
            p_value=num(shift.p_value),
            adjusted_p_value=num(shift.adjusted_p_value),
            drifted=shift.drifted,
        )
        for shift in result.annotators
    ]
    return result, rows


def projection(reference: np.ndarray, new: np.ndarray, *, seed: int = 0) -> Projection:
    """Both samples ``(m, D)``, ``(n, D)`` on the pooled first two principal components."""
    pooled = np.concatenate([reference, new]).astype(np.float64)
    pca = PCA(n_components=2, random_state=seed).fit(pooled)
    rng = np.random.default_rng(seed)

    def points(values: np.ndarray) -> list[tuple[float, float]]:
        if len(values) > PROJECTION_POINTS:
            values = values[np.sort(rng.choice(len(values), PROJECTION_POINTS, replace=False))]
        flat = pca.transform(values.astype(np.float64))
        return [(round(float(x), 4), round(float(y), 4)) for x, y in flat]

    return Projection(
        reference=points(reference),
        new=points(new),
        explained_variance=[float(v) for v in pca.explained_variance_ratio_],
    )
