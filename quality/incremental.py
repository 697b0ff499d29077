"""Agreement kept up to date one annotation at a time.

:class:`IncrementalAgreement` holds the ratings matrix, per-unit class counts, the integer
:class:`~quality.agreement.PairSums` and the coincidence matrix. Adding, changing or removing
one rating touches only that unit: O(n_classes^2) work, whatever the number of units.
Krippendorff's alpha and percent agreement are computed from the integer sums by the same
functions the full computation uses, so they equal a full recompute exactly.
"""

from __future__ import annotations

import numpy as np

from quality.agreement import (
    KrippendorffAlpha,
    PairSums,
    PercentAgreement,
    alpha_from_sums,
    coincidence_matrix,
    pair_sums,
    percent_from_sums,
)
from quality.ratings import MISSING, category_counts, validate_ratings


class IncrementalAgreement:
    """Ratings ``(n_units, n_annotators)`` with agreement statistics updated in place.

    The matrix grows as ratings arrive for new unit or annotator indices.
    """

    def __init__(self, n_classes: int, *, n_units: int = 0, n_annotators: int = 0) -> None:
        empty = np.full((n_units, n_annotators), MISSING, dtype=np.int64)
        self._n_classes = n_classes
        self._ratings = validate_ratings(empty, n_classes)
        self._counts = np.zeros((n_units, n_classes), dtype=np.int64)
        self._units_by_m = np.zeros(n_annotators + 1, dtype=np.int64)
        self._agree_by_m = np.zeros(n_annotators + 1, dtype=np.int64)
        self._pairable = np.zeros(n_classes, dtype=np.int64)
        self._coincidence = np.zeros((n_classes, n_classes))
        self._shape = (n_units, n_annotators)

    @classmethod
    def from_ratings(cls, ratings: np.ndarray, n_classes: int) -> IncrementalAgreement:
        """A state holding ``ratings: (n_units, n_annotators)`` (vectorised start)."""
        values = validate_ratings(ratings, n_classes)
        state = cls(n_classes, n_units=values.shape[0], n_annotators=values.shape[1])
        state._ratings = values.copy()
        state._counts = category_counts(values, n_classes)
        sums = pair_sums(values, n_classes)
        size = min(sums.units_by_m.size, values.shape[1] + 1)
        state._units_by_m[:size] = sums.units_by_m[:size]
        state._agree_by_m[:size] = sums.agree_by_m[:size]
        state._pairable = sums.pairable.copy()
        state._coincidence = coincidence_matrix(values, n_classes)
        return state

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_units, n_annotators)`` seen so far."""
        return self._shape

    @property
    def ratings(self) -> np.ndarray:
        """A copy of the ratings matrix ``(n_units, n_annotators)``."""
        n_units, n_annotators = self._shape
        return self._ratings[:n_units, :n_annotators].copy()

    def set(self, unit: int, annotator: int, label: int) -> None:
        """Record ``label`` (a class index, or MISSING to remove) for ``(unit, annotator)``."""
        for name, value in (("unit", unit), ("annotator", annotator)):
            if not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"expected a non-negative int {name} index, got {value!r}")
        if not isinstance(label, int | np.integer) or not MISSING <= label < self._n_classes:
            raise ValueError(
                f"expected a label in [0, {self._n_classes}) or {MISSING}, got {label!r}"
            )
        self._grow(int(unit) + 1, int(annotator) + 1)
        previous = int(self._ratings[unit, annotator])
        if previous == label:
            return
        self._withdraw(unit)
        if previous != MISSING:
            self._counts[unit, previous] -= 1
        if label != MISSING:
            self._counts[unit, label] += 1
        self._ratings[unit, annotator] = label
        self._deposit(unit)

    def remove(self, unit: int, annotator: int) -> None:
        """Forget the rating of ``(unit, annotator)``, if any."""
        self.set(unit, annotator, MISSING)

    def sums(self) -> PairSums:
        """A copy of the integer sums behind alpha and percent agreement."""
        return PairSums(self._units_by_m.copy(), self._agree_by_m.copy(), self._pairable.copy())

    def alpha(self) -> KrippendorffAlpha:
        """Krippendorff's alpha (nominal) of the current ratings."""
        return alpha_from_sums(self.sums())

    def percent_agreement(self) -> PercentAgreement:
        """Pairwise percent agreement of the current ratings."""
        return percent_from_sums(self.sums())

    def coincidence_matrix(self) -> np.ndarray:
        """The coincidence matrix ``(n_classes, n_classes)``, kept by float updates."""
        return self._coincidence.copy()

    def _withdraw(self, unit: int) -> None:
        self._apply(unit, -1)

    def _deposit(self, unit: int) -> None:
        self._apply(unit, +1)

    def _apply(self, unit: int, sign: int) -> None:
        counts = self._counts[unit]
        m = int(counts.sum())
        if m < 2:
            return
        self._units_by_m[m] += sign
        self._agree_by_m[m] += sign * int(counts @ (counts - 1))
        self._pairable += sign * counts
        pairs = (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
        self._coincidence += sign * pairs

    def _grow(self, n_units: int, n_annotators: int) -> None:
        units, annotators = max(n_units, self._shape[0]), max(n_annotators, self._shape[1])
        self._shape = (units, annotators)
        rows, columns = self._ratings.shape
        if units <= rows and annotators <= columns:
            return
        new_rows = max(units, 2 * rows) if units > rows else rows
        new_columns = max(annotators, columns)
        grown = np.full((new_rows, new_columns), MISSING, dtype=np.int64)
        grown[:rows, :columns] = self._ratings
        self._ratings = grown
        counts = np.zeros((new_rows, self._n_classes), dtype=np.int64)
        counts[:rows] = self._counts
        self._counts = counts
        extra = new_columns + 1 - self._units_by_m.size
        if extra > 0:
            self._units_by_m = np.concatenate([self._units_by_m, np.zeros(extra, np.int64)])
            self._agree_by_m = np.concatenate([self._agree_by_m, np.zeros(extra, np.int64)])
