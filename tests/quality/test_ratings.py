"""The ratings matrix: validation and building from triples."""

from __future__ import annotations

import numpy as np
import pytest

from quality.agreement import krippendorff_alpha
from quality.consensus import dawid_skene, majority_vote
from quality.ratings import (
    MISSING,
    category_counts,
    ratings_from_indices,
    table_from_triples,
    validate_ratings,
)


def test_triples_become_a_matrix_with_ids_in_first_seen_order() -> None:
    table = table_from_triples(
        [("img-7", "ann", 2), ("img-3", "bob", 0), ("img-7", "bob", 2)], n_classes=3
    )
    assert table.unit_ids == ("img-7", "img-3")
    assert table.annotator_ids == ("ann", "bob")
    np.testing.assert_array_equal(table.ratings, [[2, 2], [MISSING, 0]])
    np.testing.assert_array_equal(category_counts(table.ratings, 3), [[0, 0, 2], [1, 0, 0]])


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        (np.zeros(4, dtype=int), "shape \\(n_units, n_annotators\\)"),
        (np.array([["a", "b"]]), "integer dtype"),
        (np.array([[0.5, 1.0]]), "integer class indices"),
        (np.array([[0, 3]]), "\\[0, 3\\) or -1.*annotator 1"),
        (np.array([[-2, 0]]), "\\[0, 3\\) or -1"),
    ],
)
def test_bad_matrices_raise_naming_what_was_expected(ratings: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_ratings(ratings, 3)
    with pytest.raises(ValueError, match=message):
        krippendorff_alpha(ratings, 3)
    with pytest.raises(ValueError, match=message):
        dawid_skene(ratings, 3)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_classes >= 1"):
        validate_ratings(np.zeros((2, 2), dtype=int), 0)
    with pytest.raises(ValueError, match="one rating per"):
        ratings_from_indices(
            np.array([0, 0]), np.array([1, 1]), np.array([0, 1]), n_units=1, n_annotators=2,
            n_classes=2,
        )  # fmt: skip
    with pytest.raises(ValueError, match="unit indices in \\[0, 1\\)"):
        ratings_from_indices(
            np.array([1]), np.array([0]), np.array([0]), n_units=1, n_annotators=1, n_classes=2
        )
    with pytest.raises(ValueError, match="int class index"):
        table_from_triples([("u", "a", "cat")], n_classes=2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="tie_break of shape"):
        majority_vote(np.zeros((2, 2), dtype=int), 2, tie_break=np.zeros((3, 2)))


def test_whole_floats_are_accepted() -> None:
    values = validate_ratings(np.array([[0.0, -1.0], [2.0, 1.0]]), 3)
    assert values.dtype == np.int64
    np.testing.assert_array_equal(values, [[0, MISSING], [2, 1]])
