"""Incremental agreement equals a full recompute after every single change."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from quality.agreement import coincidence_matrix, krippendorff_alpha, percent_agreement
from quality.incremental import IncrementalAgreement
from quality.ratings import MISSING


def test_random_streams_of_adds_changes_and_removals_match_a_full_recompute() -> None:
    rng = np.random.default_rng(10)
    for stream in range(5):
        n_classes = int(rng.integers(2, 6))
        state = IncrementalAgreement(n_classes)
        for _ in range(400):
            unit, annotator = int(rng.integers(0, 30)), int(rng.integers(0, 5))
            label = int(rng.integers(MISSING, n_classes))  # MISSING removes
            state.set(unit, annotator, label)
            ratings = state.ratings
            assert state.alpha() == krippendorff_alpha(ratings, n_classes)
            assert state.percent_agreement() == percent_agreement(ratings, n_classes)
            np.testing.assert_allclose(
                state.coincidence_matrix(), coincidence_matrix(ratings, n_classes), atol=1e-9
            )
        value = state.alpha().value
        reference = krippendorff.alpha(
            reliability_data=np.where(ratings == MISSING, np.nan, ratings).T.astype(float),
            level_of_measurement="nominal",
            value_domain=range(n_classes),
        )
        assert value == pytest.approx(reference, abs=1e-9), stream


def test_starting_from_a_matrix_then_updating_matches() -> None:
    rng = np.random.default_rng(11)
    ratings = rng.integers(MISSING, 4, size=(200, 6))
    state = IncrementalAgreement.from_ratings(ratings, 4)
    assert state.alpha() == krippendorff_alpha(ratings, 4)
    state.set(5, 2, 3)
    state.remove(7, 0)
    state.set(250, 8, 1)  # a new unit and a new annotator grow the matrix
    ratings[5, 2], ratings[7, 0] = 3, MISSING
    grown = np.full((251, 9), MISSING)
    grown[:200, :6] = ratings
    grown[250, 8] = 1
    np.testing.assert_array_equal(state.ratings, grown)
    assert state.shape == (251, 9)
    assert state.alpha() == krippendorff_alpha(grown, 4)


def test_bad_updates_raise() -> None:
    state = IncrementalAgreement(3)
    with pytest.raises(ValueError, match="label in \\[0, 3\\) or -1"):
        state.set(0, 0, 3)
    with pytest.raises(ValueError, match="non-negative int unit"):
        state.set(-1, 0, 1)
