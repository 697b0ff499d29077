"""Drift checks: images (MMD, KS screen, novelty), predictions, labels, annotators.

Pure functions over arrays with stated shapes, each returning a frozen :class:`DriftResult`
(statistic, p-value, the level it was held to, the verdict, sample sizes and the
multiple-testing control applied). :class:`AlphaSpending` re-judges repeated checks so that
false alarms do not grow with the number of checks.
"""

from quality.drift.annotators import annotator_drift
from quality.drift.images import IMAGE_WEIGHTS, image_drift, pooled_projection
from quality.drift.labels import label_drift, prior_drift
from quality.drift.mmd import gaussian_kernel, mmd_test, permutation_statistics
from quality.drift.novelty import conformal_p_values, nearest_distances, novelty_test
from quality.drift.online import AlphaSpending
from quality.drift.predictions import class_drift, prediction_drift
from quality.drift.results import (
    AnnotatorDriftResult,
    AnnotatorShift,
    CategoricalDriftResult,
    DriftResult,
    ImageDriftResult,
    KSScreenResult,
    LabelDriftResult,
    MMDResult,
    NoveltyResult,
    PredictionDriftResult,
)
from quality.drift.screen import ks_screen

__all__ = [
    "IMAGE_WEIGHTS",
    "AlphaSpending",
    "AnnotatorDriftResult",
    "AnnotatorShift",
    "CategoricalDriftResult",
    "DriftResult",
    "ImageDriftResult",
    "KSScreenResult",
    "LabelDriftResult",
    "MMDResult",
    "NoveltyResult",
    "PredictionDriftResult",
    "annotator_drift",
    "class_drift",
    "conformal_p_values",
    "gaussian_kernel",
    "image_drift",
    "ks_screen",
    "label_drift",
    "mmd_test",
    "nearest_distances",
    "novelty_test",
    "permutation_statistics",
    "pooled_projection",
    "prediction_drift",
    "prior_drift",
]
