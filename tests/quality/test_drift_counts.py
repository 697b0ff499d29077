"""Label, prediction and annotator drift on real labels (Fashion-MNIST, sklearn digits)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from statsmodels.stats.multitest import multipletests

from guides import load_guide
from guides.loader import example_guide_path
from guides.schema import Guide
from models.datasets import load_fashion_mnist
from quality.drift import annotator_drift, label_drift, prediction_drift, prior_drift
from quality.drift.combine import holm
from quality.drift.counts import goodness_of_fit, homogeneity


@pytest.fixture(scope="module")
def guide() -> Guide:
    return load_guide(example_guide_path("fashion-mnist"))


@pytest.fixture(scope="module")
def fashion_labels(guide: Guide) -> np.ndarray:
    names = np.array(guide.label_names)
    return names[load_fashion_mnist("test")[1]]


@pytest.fixture(scope="module")
def digit_probs() -> tuple[np.ndarray, np.ndarray]:
    """Held-out class probabilities of a logistic regression on digits, and the true labels."""
    data = load_digits()
    x, y = data.data / 16.0, data.target
    model = LogisticRegression(max_iter=300).fit(x[:600], y[:600])
    return model.predict_proba(x[600:]), y[600:]


def band(runs: int, alpha: float) -> tuple[float, float]:
    low, high = stats.binom.ppf([0.001, 0.999], runs, alpha)
    return low, high


def test_labels_follow_the_guide_priors(guide: Guide, fashion_labels: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    runs = 200
    p_values = [
        label_drift(rng.choice(fashion_labels, 500).tolist(), guide).p_value for _ in range(runs)
    ]
    low, high = band(runs, 0.05)
    assert low <= int((np.array(p_values) <= 0.05).sum()) <= high
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_label_drift_matches_scipy_and_catches_a_prior_shift(
    guide: Guide, fashion_labels: np.ndarray
) -> None:
    labels = fashion_labels[:500].tolist()
    result = label_drift(labels, guide)
    counts = np.array([labels.count(name) for name in guide.label_names])
    reference = stats.chisquare(counts, np.full(10, 50.0))
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.threshold == guide.thresholds.drift_significance
    shifted = labels[:250] + [n for n in fashion_labels[500:] if n in ("Bag", "Sandal")][:250]
    assert label_drift(shifted, guide).drifted


def test_finite_population_correction_restores_the_level(fashion_labels: np.ndarray) -> None:
    """Batches of 3,000 drawn without replacement from the 10,000 test labels, held against
    the test set's own class shares: uncorrected the test is far too quiet (f = 0.7)."""
    names, counts = np.unique(fashion_labels, return_counts=True)
    shares, size = counts / counts.sum(), fashion_labels.size
    rng = np.random.default_rng(5)
    runs, corrected, plain = 400, [], []
    for _ in range(runs):
        batch = fashion_labels[rng.choice(size, 3000, replace=False)]
        observed = np.array([np.sum(batch == name) for name in names])
        plain.append(prior_drift(observed, shares).p_value)
        result = prior_drift(observed, shares, population_size=size)
        corrected.append(result.p_value)
    reference = stats.chisquare(observed, shares * 3000)
    assert result.statistic == pytest.approx(reference.statistic * (size - 1) / (size - 3000))
    assert result.population_size == size
    low, high = band(runs, 0.05)
    assert low <= int((np.array(corrected) <= 0.05).sum()) <= high
    assert int((np.array(plain) <= 0.05).sum()) < low
    assert stats.kstest(corrected, "uniform").pvalue > 0.001
    with pytest.raises(ValueError, match="population_size above the 3000 labels"):
        prior_drift(observed, shares, population_size=3000)


def test_zero_prior_and_unknown_labels_are_certain_drift(
    guide: Guide, fashion_labels: np.ndarray
) -> None:
    priors = {name: (0.0 if name == "Bag" else 1 / 9) for name in guide.label_names}
    no_bags = Guide.model_validate({**guide.model_dump(), "class_priors": priors})
    without = [n for n in fashion_labels[:600] if n != "Bag"][:450]
    assert not label_drift(without, no_bags).drifted
    result = label_drift([*without, "Bag"], no_bags)
    assert (result.p_value, result.drifted, result.impossible_labels) == (0.0, True, ("Bag",))
    unknown = label_drift([*without, "Hat", "Hat"], no_bags)
    assert unknown.impossible_labels == ("Hat",) and unknown.n_new == 452


def test_small_expected_counts_are_pooled() -> None:
    counts = np.array([40, 30, 2, 1, 27])
    priors = np.array([0.4, 0.3, 0.02, 0.01, 0.27])
    fit = goodness_of_fit(counts, priors)
    assert fit.pooled == (2, 3, 4)  # 2 + 1 expected is below 5: merged with the next smallest
    reference = stats.chisquare([40, 30, 2 + 1 + 27], [40.0, 30.0, 2 + 1 + 27.0])
    assert (fit.statistic, fit.dof) == (pytest.approx(reference.statistic), 2)
    assert homogeneity(np.zeros(3, int), np.array([1, 2, 3])).p_value == 1.0


def test_priors_and_counts_are_validated(guide: Guide) -> None:
    with pytest.raises(ValueError, match="summing to 1"):
        prior_drift(np.array([1, 2]), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="non-negative counts"):
        prior_drift(np.array([1, -2]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="no class_priors"):
        label_drift(["Bag"], Guide.model_validate({**guide.model_dump(), "class_priors": None}))


def test_predictions_calibrated_and_catch_a_class_shift(
    digit_probs: tuple[np.ndarray, np.ndarray],
) -> None:
    probs, labels = digit_probs
    rng = np.random.default_rng(2)
    runs, p_values = 150, []
    for _ in range(runs):
        idx = rng.permutation(len(probs))
        p_values.append(prediction_drift(probs[idx[:500]], probs[idx[500:800]]).p_value)
    low, high = band(runs, 0.05)
    assert low <= int((np.array(p_values) <= 0.05).sum()) <= high
    shifted = prediction_drift(probs[:500], probs[500:][labels[500:] < 3][:200])
    assert shifted.drifted and shifted.classes.p_value < 1e-10
    assert "holm" in shifted.control


def test_prediction_inputs_are_validated(digit_probs: tuple[np.ndarray, np.ndarray]) -> None:
    probs = digit_probs[0]
    with pytest.raises(ValueError, match="sum to 1"):
        prediction_drift(probs, probs * 2 / 3)
    with pytest.raises(ValueError, match="same n_classes"):
        prediction_drift(probs, probs[:, :5] / probs[:, :5].sum(1, keepdims=True))


def test_a_careless_annotator_is_flagged_alone() -> None:
    truth = load_digits().target[:1000]
    who = np.random.default_rng(3).choice(["ann", "bob", "cat", "dan", "eve"], size=1000)
    careless = np.flatnonzero(who == "eve")
    labels = truth.copy()
    labels[careless[: len(careless) // 5]] = 0  # a fifth of eve's labels are class 0
    result = annotator_drift(labels, who, n_classes=10)
    assert [a.annotator for a in result.annotators if a.drifted] == ["eve"]
    assert result.drifted and "holm over 5 annotators" in result.control
    labels[careless[: len(careless) // 2]] = 0  # against the consensus, even a blatant one
    consensus = annotator_drift(labels, who, n_classes=10, reference_counts=np.bincount(truth))
    assert [a.annotator for a in consensus.annotators if a.drifted] == ["eve"]
    with pytest.raises(ValueError, match="two annotators"):
        annotator_drift(labels, ["ann"] * 1000, n_classes=10)
    with pytest.raises(ValueError, match="labels in"):
        annotator_drift(labels, who, n_classes=5)


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 0.2, (3, 7)) ** 2
    p[0, 1] = p[0, 4]  # a tie
    reference = np.array([multipletests(row, method="holm")[1] for row in p])
    np.testing.assert_allclose([holm(row) for row in p], reference, rtol=1e-12)
    assert holm([0.3]) == 0.3
    with pytest.raises(ValueError, match="p-values"):
        holm([0.5, 1.5])
