"""Typed results of the drift checks: frozen dataclasses that turn into JSON with ``to_dict``.

Every check returns a :class:`DriftResult` (or a subclass with the check's details):
the statistic, its p-value, the level it was compared with (``threshold``), the verdict, the
sample sizes and ``control``, a sentence naming the multiple-testing or online control that
produced the p-value and the level.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    """``value`` with arrays, numpy scalars, nested results and tuples made JSON-ready."""
    if isinstance(value, DriftResult | AnnotatorShift):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclass(frozen=True, kw_only=True, eq=False)
class DriftResult:
    """One drift test: ``drifted`` is ``p_value <= threshold``."""

    test: str
    statistic: float
    p_value: float
    threshold: float
    drifted: bool
    n_reference: int
    n_new: int
    control: str = "none: a single test at the stated level"

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready Python values (lists for arrays, dicts for results)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True, eq=False)
class MMDResult(DriftResult):
    """Kernel two-sample test; ``statistic`` is the unbiased MMD^2 of reference vs new."""

    bandwidth: float
    n_permutations: int
    device: str


@dataclass(frozen=True, kw_only=True, eq=False)
class KSScreenResult(DriftResult):
    """Per-dimension KS tests; ``statistic`` is the largest KS distance over the dimensions.

    ``p_value`` is the smallest Benjamini-Hochberg adjusted p-value (the Simes test of "no
    dimension shifted"); ``flagged_dimensions`` are those with adjusted p <= threshold.
    """

    ks_statistics: np.ndarray
    """``(n_dims,)`` KS distance per dimension."""
    dimension_p_values: np.ndarray
    """``(n_dims,)`` raw KS p-value per dimension."""
    adjusted_p_values: np.ndarray
    """``(n_dims,)`` Benjamini-Hochberg adjusted p-values."""
    flagged_dimensions: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, eq=False)
class NoveltyResult(DriftResult):
    """Images far from every reference image; ``statistic`` is the count of exceedances.

    Each new image gets a conformal p-value from its nearest-neighbour cosine distance to the
    reference, ranked among the reference images' own leave-one-out distances.
    ``novel_indices`` are the images kept by Benjamini-Hochberg at ``threshold`` (false
    discovery rate), most novel first. The batch verdict counts the images whose conformal
    p-value is at most each of ``quantiles`` and tests the most significant count against the
    exact null law of that scan; ``quantile``, ``exceedance_distance``, ``n_exceeding`` and
    ``expected_exceeding`` describe the most significant quantile.
    """

    distances: np.ndarray
    """``(n_new,)`` cosine distance of each new image to its nearest reference image."""
    image_p_values: np.ndarray
    """``(n_new,)`` conformal p-values, multiples of ``1 / (n_reference + 1)``."""
    novel_indices: tuple[int, ...]
    quantile: float
    exceedance_distance: float
    """Distance above which a new image counts as an exceedance."""
    n_exceeding: int
    expected_exceeding: float
    smallest_image_p_value: float
    """``1 / (n_reference + 1)``: no image can be more significant than this."""
    quantiles: tuple[float, ...] = ()
    """The quantiles scanned, as ``k / (n_reference + 1)``, ascending."""
    exceedance_counts: tuple[int, ...] = ()
    """The number of new images beyond each of ``quantiles``."""


@dataclass(frozen=True, kw_only=True, eq=False)
class CategoricalDriftResult(DriftResult):
    """A chi-square test on class counts; classes with small expected counts are pooled."""

    observed: np.ndarray
    """``(n_classes,)`` counts in the new sample."""
    expected: np.ndarray
    """``(n_classes,)`` counts expected under no drift, scaled to the new sample's size."""
    degrees_of_freedom: int
    pooled_classes: tuple[int, ...]
    """Classes merged into one bin because their expected count was below 5."""


@dataclass(frozen=True, kw_only=True, eq=False)
class LabelDriftResult(CategoricalDriftResult):
    """Confirmed labels against the guide's class priors.

    ``impossible_labels`` names labels seen in the new sample that have prior 0 or that the
    guide does not have; one such label is a certain drift (``p_value`` 0).
    """

    label_names: tuple[str, ...]
    impossible_labels: tuple[str, ...]
    population_size: int | None = None
    """Finite population the labels were drawn from without replacement (None: independent)."""


@dataclass(frozen=True, kw_only=True, eq=False)
class PredictionDriftResult(DriftResult):
    """Black-box shift detection: predicted classes and confidences, combined by Holm."""

    classes: CategoricalDriftResult
    confidence: DriftResult


@dataclass(frozen=True, kw_only=True, eq=False)
class AnnotatorShift:
    """One annotator's label distribution against the comparison distribution."""

    annotator: str
    n_labels: int
    statistic: float
    p_value: float
    adjusted_p_value: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready Python values."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True, eq=False)
class AnnotatorDriftResult(DriftResult):
    """Per-annotator tests, Sidak-Holm corrected; ``p_value`` is the smallest adjusted one."""

    annotators: tuple[AnnotatorShift, ...]


@dataclass(frozen=True, kw_only=True, eq=False)
class ImageDriftResult(DriftResult):
    """MMD, the KS screen and novelty on one batch, combined by Sidak-Holm into one verdict."""

    mmd: MMDResult
    ks_screen: KSScreenResult
    novelty: NoveltyResult
    n_components: int
    """Dimensions MMD and the KS screen ran on (after the pooled PCA)."""
