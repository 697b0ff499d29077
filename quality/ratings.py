"""The annotation matrix every quality check reads, and how to build it.

``ratings: (n_units, n_annotators)`` holds int class indices in ``[0, n_classes)``, with
:data:`MISSING` (-1) where an annotator did not label a unit. A unit is a task (one image);
class indices follow the guide's label order (:meth:`guides.schema.Guide.label_index`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

MISSING = -1
"""The value of a missing rating."""


def validate_ratings(ratings: np.ndarray, n_classes: int) -> np.ndarray:
    """``ratings: (n_units, n_annotators)`` as int64, checked; ValueError otherwise.

    Accepts any integer dtype (and floats holding whole numbers, such as a matrix read back
    from JSON); every value must be :data:`MISSING` or a class index below ``n_classes``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer):
        raise ValueError(f"expected n_classes as an int, got {type(n_classes).__name__}")
    if n_classes < 1:
        raise ValueError(f"expected n_classes >= 1, got {n_classes}")
    array = np.asarray(ratings)
    if array.ndim != 2:
        raise ValueError(f"expected ratings of shape (n_units, n_annotators), got {array.shape}")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError("expected integer class indices in ratings, got non-integer floats")
    elif array.dtype.kind not in "iu":
        raise ValueError(f"expected an integer dtype for ratings, got {array.dtype}")
    values = array.astype(np.int64)
    bad = (values != MISSING) & ((values < 0) | (values >= n_classes))
    if np.any(bad):
        unit, annotator = np.argwhere(bad)[0]
        raise ValueError(
            f"expected class indices in [0, {n_classes}) or {MISSING} for missing, got "
            f"{values[unit, annotator]} at unit {unit}, annotator {annotator}"
        )
    return values


def category_counts(ratings: np.ndarray, n_classes: int) -> np.ndarray:
    """How many annotators gave each class to each unit: ``(n_units, n_classes)`` int64."""
    values = validate_ratings(ratings, n_classes)
    units, _ = np.nonzero(values != MISSING)
    counts = np.zeros((values.shape[0], n_classes), dtype=np.int64)
    np.add.at(counts, (units, values[values != MISSING]), 1)
    return counts


def ratings_from_indices(
    units: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    *,
    n_units: int,
    n_annotators: int,
    n_classes: int,
) -> np.ndarray:
    """Scatter triples ``units, annotators, labels: (n_ratings,)`` into a ratings matrix.

    Indices must lie in range; one unit rated twice by the same annotator is a ValueError
    (keep the annotator's latest answer before calling).
    """
    columns = [np.asarray(a) for a in (units, annotators, labels)]
    if any(c.ndim != 1 for c in columns) or len({c.shape[0] for c in columns}) != 1:
        shapes = [c.shape for c in columns]
        raise ValueError(f"expected three 1-D arrays of equal length (n_ratings,), got {shapes}")
    if any(c.size and c.dtype.kind not in "iu" for c in columns):
        raise ValueError("expected integer units, annotators and labels")
    u, a, y = (c.astype(np.int64) for c in columns)
    for name, values, bound in (("unit", u, n_units), ("annotator", a, n_annotators)):
        if values.size and (values.min() < 0 or values.max() >= bound):
            raise ValueError(f"expected {name} indices in [0, {bound})")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"expected labels in [0, {n_classes}), missing ratings left out")
    ratings = np.full((n_units, n_annotators), MISSING, dtype=np.int64)
    ratings[u, a] = y
    if np.count_nonzero(ratings != MISSING) != y.size:
        raise ValueError("expected at most one rating per (unit, annotator); got duplicates")
    return ratings


@dataclass(frozen=True)
class RatingTable:
    """A ratings matrix with the ids its rows and columns stand for.

    ``ratings: (len(unit_ids), len(annotator_ids))``; ids keep first-seen order.
    """

    ratings: np.ndarray
    unit_ids: tuple[Hashable, ...]
    annotator_ids: tuple[Hashable, ...]
    n_classes: int


def table_from_triples(
    triples: Iterable[tuple[Hashable, Hashable, int]], *, n_classes: int
) -> RatingTable:
    """Build a :class:`RatingTable` from ``(unit_id, annotator_id, class_index)`` triples."""
    unit_index: dict[Hashable, int] = {}
    annotator_index: dict[Hashable, int] = {}
    units, annotators, labels = [], [], []
    for unit, annotator, label in triples:
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise ValueError(f"expected an int class index, got {label!r} for unit {unit!r}")
        units.append(unit_index.setdefault(unit, len(unit_index)))
        annotators.append(annotator_index.setdefault(annotator, len(annotator_index)))
        labels.append(int(label))
    ratings = ratings_from_indices(
        np.array(units, dtype=np.int64),
        np.array(annotators, dtype=np.int64),
        np.array(labels, dtype=np.int64),
        n_units=len(unit_index),
        n_annotators=len(annotator_index),
        n_classes=n_classes,
    )
    return RatingTable(ratings, tuple(unit_index), tuple(annotator_index), n_classes)
