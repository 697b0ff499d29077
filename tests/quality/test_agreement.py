"""Agreement statistics against published worked examples and reference implementations."""

from __future__ import annotations

import itertools
import math

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from quality.agreement import (
    cohen_kappa_pairwise,
    coincidence_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from quality.ratings import MISSING

_ = MISSING
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers
# (rows) x 12 units, values 1..5, nominal alpha = 0.743.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]
# Wikipedia, "Krippendorff's alpha", computational example: 3 coders x 15 units, values
# 1..4, nominal alpha = 0.691.
WIKIPEDIA_ALPHA = [
    [_, _, _, _, _, 3, 4, 1, 2, 1, 1, 3, 3, _, 3],
    [1, _, 2, 1, 3, 3, 4, 3, _, _, _, _, _, _, _],
    [_, _, 2, 1, 3, 4, 4, _, 2, 1, 1, 3, 3, _, 4],
]
# Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses; kappa = 0.430.
FLEISS_1971 = [
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
]  # fmt: skip
# Wikipedia, "Fleiss' kappa", worked example: 10 subjects x 5 categories, 14 raters each
# (counts per category); kappa = 0.210.
WIKIPEDIA_FLEISS_COUNTS = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]  # fmt: skip


def from_one_based(rows: list[list[int]], *, coders_in_rows: bool) -> np.ndarray:
    values = np.array(rows)
    values = np.where(values == MISSING, MISSING, values - 1)
    return values.T if coders_in_rows else values


def ratings_from_counts(counts: list[list[int]]) -> np.ndarray:
    return np.array([np.repeat(np.arange(len(row)), row) for row in counts])


def random_ratings(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    n_units, n_annotators, n_classes = rng.integers(2, 40), rng.integers(2, 7), rng.integers(2, 6)
    truth = rng.integers(0, n_classes, n_units)
    noisy = rng.random((n_units, n_annotators)) < rng.uniform(0.1, 0.9)
    ratings = np.where(noisy, rng.integers(0, n_classes, (n_units, n_annotators)), truth[:, None])
    ratings[rng.random(ratings.shape) < rng.uniform(0.0, 0.5)] = MISSING
    return ratings, int(n_classes)


def reference_alpha(ratings: np.ndarray, n_classes: int) -> float:
    data = np.where(ratings == MISSING, np.nan, ratings).T.astype(float)
    return krippendorff.alpha(
        reliability_data=data, level_of_measurement="nominal", value_domain=range(n_classes)
    )


def test_krippendorff_published_examples() -> None:
    paper = krippendorff_alpha(from_one_based(KRIPPENDORFF_2011, coders_in_rows=True), 5)
    assert round(paper.value, 3) == 0.743
    assert paper.n_pairable == 40 and paper.n_units == 11
    wiki = krippendorff_alpha(from_one_based(WIKIPEDIA_ALPHA, coders_in_rows=True), 4)
    assert round(wiki.value, 3) == 0.691
    assert wiki.n_pairable == 26


def test_fleiss_published_examples() -> None:
    fleiss = fleiss_kappa(from_one_based(FLEISS_1971, coders_in_rows=False), 5)
    assert round(fleiss.value, 3) == 0.430
    assert (fleiss.raters_per_unit, fleiss.n_units, fleiss.n_units_excluded) == (6, 30, 0)
    wiki = fleiss_kappa(ratings_from_counts(WIKIPEDIA_FLEISS_COUNTS), 5)
    assert round(wiki.value, 3) == 0.210


def test_alpha_and_coincidences_match_the_krippendorff_package() -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        ratings, n_classes = random_ratings(rng)
        ours = krippendorff_alpha(ratings, n_classes)
        if math.isnan(ours.value):
            continue
        assert ours.value == pytest.approx(reference_alpha(ratings, n_classes), abs=1e-9)
        coincidences = coincidence_matrix(ratings, n_classes)
        np.testing.assert_allclose(coincidences, coincidences.T, atol=1e-12)
        assert np.trace(coincidences) / ours.n_pairable == pytest.approx(
            1 - ours.observed_disagreement
        )
        checked += 1
    assert checked > 250


def test_percent_agreement_is_the_mean_share_of_agreeing_pairs() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        ratings, n_classes = random_ratings(rng)
        shares = []
        for row in ratings:
            given = row[row != MISSING]
            pairs = list(itertools.combinations(given, 2))
            if pairs:
                shares.append(np.mean([a == b for a, b in pairs]))
        result = percent_agreement(ratings, n_classes)
        assert result.n_units == len(shares)
        if shares:
            assert result.value == pytest.approx(np.mean(shares), abs=1e-12)
    two = np.array([[0, 0], [1, 2], [2, 2], [1, MISSING], [0, 1]])
    both = (two != MISSING).all(axis=1)
    assert percent_agreement(two, 3).value == accuracy_score(two[both, 0], two[both, 1])


def test_pairwise_cohen_matches_scikit_learn_on_overlapping_units() -> None:
    rng = np.random.default_rng(2)
    for _ in range(40):
        ratings, n_classes = random_ratings(rng)
        table = cohen_kappa_pairwise(ratings, n_classes, min_overlap=2)
        for a, b in itertools.combinations(range(ratings.shape[1]), 2):
            both = (ratings[:, a] != MISSING) & (ratings[:, b] != MISSING)
            assert table.n_overlap[a, b] == both.sum()
            x, y = ratings[both, a], ratings[both, b]
            degenerate = both.sum() < 2 or (len(set(x)) == 1 and set(x) == set(y))
            if degenerate:
                assert math.isnan(table.kappa[a, b])
            else:
                expected = cohen_kappa_score(x, y, labels=range(n_classes))
                assert table.kappa[a, b] == pytest.approx(expected, abs=1e-12)
                assert table.kappa[b, a] == table.kappa[a, b]


def test_fleiss_matches_statsmodels_on_units_with_the_common_number_of_ratings() -> None:
    rng = np.random.default_rng(3)
    for _ in range(60):
        ratings, n_classes = random_ratings(rng)
        result = fleiss_kappa(ratings, n_classes)
        m = (ratings != MISSING).sum(axis=1)
        kept = ratings[m == result.raters_per_unit]
        assert result.n_units == kept.shape[0]
        assert result.n_units_excluded == np.count_nonzero((m >= 2) & (m != result.raters_per_unit))
        if kept.shape[0] == 0 or len(set(kept[kept != MISSING])) < 2:
            assert math.isnan(result.value)
            continue
        rows = [row[row != MISSING] for row in kept]
        table, _ = aggregate_raters(np.array(rows), n_cat=n_classes)
        assert result.value == pytest.approx(statsmodels_fleiss(table), abs=1e-12)


def test_undefined_statistics_are_nan_not_numbers() -> None:
    one_class = np.array([[1, 1], [1, 1], [1, MISSING]])
    assert math.isnan(krippendorff_alpha(one_class, 3).value)
    assert math.isnan(fleiss_kappa(one_class, 3).value)
    assert math.isnan(cohen_kappa_pairwise(one_class, 3).kappa[0, 1])
    assert math.isnan(percent_agreement(np.array([[0, MISSING]]), 2).value)
    perfect = np.array([[0, 0], [1, 1]])
    assert krippendorff_alpha(perfect, 2).value == 1.0
    assert percent_agreement(perfect, 2).value == 1.0
