"""MMD permutation test on sklearn digits: exact statistic, batched permutations, p-values,
calibration under no drift and power on a clear shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_digits

from quality.drift import gaussian_kernel, mmd_test, permutation_statistics
from quality.drift.mmd import median_bandwidth, random_permutations


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data.astype(np.float64) / 16.0, data.target


def direct_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD^2 straight from its definition, in float64 numpy."""

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * bandwidth**2))

    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def test_statistic_equals_the_definition(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits[0][:150], digits[0][150:270]
    result = mmd_test(x, y, n_permutations=10, device="cpu", dtype=torch.float64)
    assert result.statistic == pytest.approx(direct_mmd2(x, y, result.bandwidth), abs=1e-12)
    single = mmd_test(x, y, n_permutations=10, device="cpu", bandwidth=result.bandwidth)
    assert single.statistic == pytest.approx(result.statistic, rel=1e-4)


def test_bandwidth_is_the_median_pooled_distance(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits[0][:100], digits[0][100:180]
    pooled = np.concatenate([x, y])
    d = np.sqrt(((pooled[:, None] - pooled[None]) ** 2).sum(-1))[np.triu_indices(180, 1)]
    sigma = median_bandwidth(torch.from_numpy(pooled), generator=torch.Generator())
    assert sigma == pytest.approx(np.sort(d)[(d.size - 1) // 2])
    assert mmd_test(x, y, n_permutations=5, device="cpu").bandwidth == pytest.approx(sigma)


def test_batched_permutations_equal_a_loop(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x = digits[0][:90]
    kernel = gaussian_kernel(torch.from_numpy(x), 3.0)
    perms = random_permutations(90, 40, seed=3)
    batched = permutation_statistics(kernel, 50, perms).numpy()
    loop = [direct_mmd2(x[p[:50]], x[p[50:]], 3.0) for p in perms.numpy()]
    np.testing.assert_allclose(batched, loop, rtol=1e-9, atol=1e-12)


def test_p_value_is_k_plus_one_over_n_plus_one(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits[0][:80], digits[0][80:150]
    result = mmd_test(x, y, n_permutations=49, seed=7, device="cpu", dtype=torch.float64)
    pooled = torch.from_numpy(np.concatenate([x, y]))
    kernel = gaussian_kernel(pooled, result.bandwidth)
    null = permutation_statistics(kernel, 80, random_permutations(150, 49, seed=8)).numpy()
    k = int((null >= result.statistic).sum())
    assert result.p_value == (k + 1) / 50
    assert result.n_permutations == 49 and (result.n_reference, result.n_new) == (80, 70)


def test_seeded_and_reproducible(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits[0][:100], digits[0][100:200]
    first = mmd_test(x, y, n_permutations=99, seed=1, device="cpu")
    again = mmd_test(x, y, n_permutations=99, seed=1, device="cpu")
    assert (first.p_value, first.statistic) == (again.p_value, again.statistic)


@pytest.mark.usefixtures("one_thread")
def test_false_alarms_stay_in_a_binomial_band(digits: tuple[np.ndarray, np.ndarray]) -> None:
    pixels = digits[0]
    rng = np.random.default_rng(0)
    runs, alpha = 150, 0.05
    p_values = []
    for run in range(runs):
        idx = rng.permutation(len(pixels))[:160]
        result = mmd_test(pixels[idx[:100]], pixels[idx[100:]], n_permutations=99, seed=run)
        p_values.append(result.p_value)
    alarms = int((np.array(p_values) <= alpha).sum())
    low, high = stats.binom.ppf([0.001, 0.999], runs, alpha)
    assert low <= alarms <= high
    assert stats.kstest(p_values, "uniform").pvalue > 0.001


def test_detects_a_clear_shift(digits: tuple[np.ndarray, np.ndarray]) -> None:
    pixels, labels = digits
    low, high = pixels[labels < 5], pixels[labels >= 5]
    result = mmd_test(low[:200], np.concatenate([low[200:260], high[:60]]), n_permutations=199)
    assert result.drifted and result.p_value == 1 / 200


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((10, 3)), np.zeros((10, 4)), "same dimension"),
        (np.zeros(10), np.zeros((10, 1)), "shape"),
        (np.zeros((1, 3)), np.zeros((10, 3)), "at least 2"),
        (np.full((10, 3), np.nan), np.zeros((10, 3)), "NaN"),
        (np.array([["a"] * 3] * 10), np.zeros((10, 3)), "real-valued"),
    ],
)
def test_bad_inputs_name_what_was_expected(x: np.ndarray, y: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mmd_test(x, y, n_permutations=5)


def test_bad_options_raise(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x = digits[0][:20]
    with pytest.raises(ValueError, match="alpha"):
        mmd_test(x, x, alpha=1.5)
    with pytest.raises(ValueError, match="n_permutations"):
        mmd_test(x, x, n_permutations=0)
