"""The KS screen, the combined image check and alpha spending, on sklearn digits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits

from quality.drift import (
    IMAGE_WEIGHTS,
    AlphaSpending,
    image_drift,
    ks_screen,
    pooled_projection,
)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))  # the file is by writer
    return data.data[order] / 16.0, data.target[order]


def test_screen_flags_the_shifted_dimensions(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pooled_projection(digits[0][:900], digits[0][900:1300], n_components=16)
    y = y.copy()
    y[:, [3, 7]] += 0.5 * x[:, [3, 7]].std(axis=0)
    result = ks_screen(x, y)
    assert {3, 7} <= set(result.flagged_dimensions) and result.drifted
    assert len(result.flagged_dimensions) <= 3  # BH: false discoveries are allowed, but few
    direct = stats.ks_2samp(x[:, 3], y[:, 3], method="asymp")  # effective size 277: asymptotic
    assert result.dimension_p_values[3] == pytest.approx(direct.pvalue)
    assert result.p_value == pytest.approx(result.adjusted_p_values.min())


@pytest.mark.usefixtures("one_thread")
def test_screen_false_alarms_stay_in_a_binomial_band(digits: tuple[np.ndarray, np.ndarray]) -> None:
    rng = np.random.default_rng(5)
    runs, p_values = 150, []
    for _ in range(runs):
        idx = rng.permutation(len(digits[0]))
        x, y = pooled_projection(digits[0][idx[:300]], digits[0][idx[300:450]], n_components=16)
        p_values.append(ks_screen(x, y).p_value)
    low, high = stats.binom.ppf([0.001, 0.999], runs, 0.05)
    assert low <= int((np.array(p_values) <= 0.05).sum()) <= high
    assert stats.kstest(p_values, "uniform").pvalue > 0.01  # Simes' p-value: uniform, not piled


def test_screen_uses_exact_p_values_on_small_samples(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Below an effective size of 50 the atoms are coarse and the asymptotic law untested."""
    x, y = digits[0][:100, 20:24], digits[0][100:160, 20:24]  # effective size 37.5
    small = ks_screen(x, y)
    exact = stats.ks_2samp(x, y, axis=0, method="exact").pvalue
    np.testing.assert_allclose(small.dimension_p_values, exact, rtol=1e-12)
    x, y = digits[0][:300, 20:24], digits[0][300:400, 20:24]  # effective size 75
    asymptotic = stats.ks_2samp(x, y, axis=0, method="asymp").pvalue
    np.testing.assert_allclose(ks_screen(x, y).dimension_p_values, asymptotic, rtol=1e-12)
    forced = ks_screen(x, y, method="exact").dimension_p_values
    assert np.all(forced >= asymptotic)  # the exact p-value counts the whole atom at d


def test_image_drift_combines_three_tests(digits: tuple[np.ndarray, np.ndarray]) -> None:
    pixels, labels = digits
    same = image_drift(pixels[:1000], pixels[1000:1300], n_permutations=199, n_components=16)
    assert not same.drifted and same.n_components == 16
    low = pixels[labels < 5]
    shifted = image_drift(low[:600], pixels[1000:1300], n_permutations=199, n_components=16)
    assert shifted.drifted and shifted.mmd.p_value == 1 / 200
    components = [shifted.mmd.p_value, shifted.ks_screen.p_value, shifted.novelty.p_value]
    shares = [IMAGE_WEIGHTS[name] for name in ("mmd", "ks_screen", "novelty")]
    smallest = min(1 - (1 - p) ** (1 / w) for p, w in zip(components, shares, strict=True))
    assert shifted.p_value == pytest.approx(smallest)  # weighted Sidak-Holm's first step
    assert "weighted sidak-holm over mmd (0.3), ks_screen (0.2), novelty (0.5)" in shifted.control
    report = json.loads(json.dumps(shifted.to_dict()))
    assert report["novelty"]["test"] == "novelty" and len(report["novelty"]["distances"]) == 300


def test_image_drift_weights(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Equal weights give plain Sidak-Holm; bad weights are refused before any test runs."""
    pixels, labels = digits
    low = pixels[labels < 5]
    third = {name: 1 / 3 for name in IMAGE_WEIGHTS}
    plain = image_drift(low[:600], pixels[1000:1300], n_permutations=99, weights=third)
    components = [plain.mmd.p_value, plain.ks_screen.p_value, plain.novelty.p_value]
    assert plain.p_value == pytest.approx(1 - (1 - min(components)) ** 3)
    with pytest.raises(ValueError, match="weights for"):
        image_drift(low[:600], pixels[1000:1300], weights={"mmd": 0.5, "novelty": 0.5})
    with pytest.raises(ValueError, match="summing to 1"):
        image_drift(low[:600], pixels[1000:1300], weights={**third, "novelty": 0.5})


def test_image_drift_with_a_projection_fitted_elsewhere(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    pixels, labels = digits
    basis = np.linalg.svd(pixels[:500] - pixels[:500].mean(0), full_matrices=False)[2][:10]
    low = pixels[500:][labels[500:] < 5]
    result = image_drift(low[:500], pixels[1400:1700], n_permutations=99, components=basis)
    assert result.drifted and result.n_components == 10
    with pytest.raises(ValueError, match="components"):
        image_drift(low[:500], pixels[1400:1700], components=basis[:, :5])


def test_alpha_spending_levels_sum_to_alpha() -> None:
    policy = AlphaSpending(alpha=0.05)
    levels = [policy.level(t) for t in range(1, 100_001)]
    assert math.fsum(levels) <= 0.05 and math.fsum(levels) > 0.0499
    assert levels[0] == pytest.approx(0.05 * 6 / math.pi**2)
    weekly = AlphaSpending(alpha=0.05, horizon=52)
    assert weekly.level(52) == pytest.approx(0.05 / 52) and weekly.level(53) == 0.0
    with pytest.raises(ValueError, match="alpha"):
        AlphaSpending(alpha=0.0)
    with pytest.raises(ValueError, match="horizon"):
        AlphaSpending(horizon=0)


@pytest.mark.usefixtures("one_thread")
def test_repeated_checks_keep_false_alarms_at_alpha(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """12 checks of new digit batches against one reference, 100 sequences, no drift.

    Each check is the KS screen on the digits' first principal component.
    """
    pixels = digits[0]
    component = pixels @ np.linalg.svd(pixels - pixels.mean(0), full_matrices=False)[2][0]
    rng = np.random.default_rng(6)
    runs, checks = 100, 12
    naive = spent = 0
    for _ in range(runs):
        idx = rng.permutation(len(pixels))
        x, rest = component[idx[:400], None], idx[400:]
        policy, alarmed, any_naive = AlphaSpending(alpha=0.05), False, False
        for _ in range(checks):
            result = ks_screen(x, component[rng.choice(rest, 60, replace=False), None])
            any_naive |= result.drifted
            judged, policy = policy.apply(result)
            alarmed |= judged.drifted
        naive += any_naive
        spent += alarmed
    assert naive / runs > 0.3  # each check at alpha: false alarms pile up over 12 checks
    assert spent <= stats.binom.ppf(0.999, runs, 0.05)
    assert policy.checks == checks and "alpha spending" in judged.control


def test_bad_inputs_raise(digits: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="n_components"):
        pooled_projection(digits[0][:50], digits[0][50:80], n_components=0)
    with pytest.raises(ValueError, match="shape"):
        image_drift(digits[0][:50], digits[0][50])
