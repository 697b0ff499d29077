"""Per-annotator scores against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from quality.annotators import (
    anchoring_audit,
    consensus_agreement,
    gold_accuracy,
    suggestion_acceptance,
)
from quality.consensus import majority_vote
from quality.ratings import MISSING

_ = MISSING
RATINGS = np.array(
    [
        [0, 0, 1],  # gold 0
        [1, 1, _],  # gold 2
        [2, _, 2],
        [1, 0, 0],
        [_, 2, _],  # gold 2
    ]
)
GOLD = np.array([0, 2, _, _, 2])


def test_gold_accuracy_by_hand() -> None:
    result = gold_accuracy(RATINGS, GOLD, 3)
    np.testing.assert_array_equal(result.attempted, [2, 3, 1])
    np.testing.assert_array_equal(result.correct, [1, 2, 0])
    np.testing.assert_allclose(result.accuracy, [0.5, 2 / 3, 0.0])
    none = gold_accuracy(RATINGS, np.full(5, MISSING), 3)
    assert np.isnan(none.accuracy).all()


def test_agreement_with_consensus_skips_units_rated_once() -> None:
    consensus = majority_vote(RATINGS, 3).labels  # [0, 1, 2, 0, 2]
    result = consensus_agreement(RATINGS, consensus, 3)
    np.testing.assert_array_equal(result.compared, [4, 3, 3])
    np.testing.assert_array_equal(result.agreed, [3, 3, 2])
    assert result.confusion[0, 0, 1] == 1  # annotator 0 said 1 where consensus was 0
    assert result.confusion.sum() == 10


def test_acceptance_counts_the_suggestion_that_was_shown() -> None:
    given = np.array([0, 1, 1, 2, 0, 1])
    shown = np.array([0, 0, 1, _, 0, 1])
    versions = ["h-a", "h-a", "h-a", "h-a", "h-b", "h-b"]
    result = suggestion_acceptance(given, shown, versions, 3)
    assert result.versions == ("h-a", "h-b")
    np.testing.assert_array_equal(result.shown, [[2, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(result.accepted, [[1, 1, 0], [1, 1, 0]])
    assert result.overall == pytest.approx(4 / 5)
    np.testing.assert_allclose(result.by_version, [2 / 3, 1.0])
    np.testing.assert_allclose(result.by_class, [2 / 3, 1.0, np.nan])


def test_anchoring_flags_annotators_who_keep_wrong_suggestions() -> None:
    # Annotator 0 keeps every suggestion; annotator 1 corrects wrong ones.
    annotator = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    shown = np.array([1, 1, 1, 2, 1, 1, 1, 2])
    gold = np.array([0, 0, 0, 2, 0, 0, 0, 2])
    given = np.array([1, 1, 1, 2, 0, 0, 0, 2])
    audit = anchoring_audit(annotator, given, shown, gold, n_annotators=2, n_classes=3)
    np.testing.assert_array_equal(audit.flagged, [True, False])
    np.testing.assert_array_equal(audit.wrong_shown, [3, 3])
    np.testing.assert_array_equal(audit.wrong_accepted, [3, 0])
    np.testing.assert_allclose(audit.acceptance, [1.0, 0.25])
    np.testing.assert_allclose(audit.gold_accuracy, [0.25, 1.0])
    few = anchoring_audit(
        annotator[:2], given[:2], shown[:2], gold[:2], n_annotators=2, n_classes=3
    )
    assert not few.flagged.any()  # 2 wrong suggestions seen: below min_wrong_shown


def test_bad_annotation_rows_raise() -> None:
    with pytest.raises(ValueError, match="gold as int indices of shape \\(5,\\)"):
        gold_accuracy(RATINGS, np.zeros(4, dtype=int), 3)
    with pytest.raises(ValueError, match="given in \\[0, 3\\)"):
        suggestion_acceptance(np.array([_]), np.array([0]), ["v"], 3)
    with pytest.raises(ValueError, match="annotator in \\[0, 1\\)"):
        anchoring_audit(
            np.array([1]), np.array([0]), np.array([0]), np.array([0]), n_annotators=1, n_classes=3
        )
