"""Why the label test's null false-alarm rate in `bench/drift.py` is below alpha.

The drift benchmark draws each 500-image batch without replacement from a finite guide-class
pool and tests its label counts against the pool's own class shares. Such counts are
multivariate hypergeometric: their covariance is the multinomial's times the finite-population
factor ``f = (N - n) / (N - 1)``, so the chi-square statistic is about ``f`` times a
chi-square variable and exceeds its critical value less often than ``alpha``. This script
draws batches from the same pool (a) as the benchmark's 500 null runs do, (b) without
replacement, many more of them, (c) with replacement (multinomial), (d) without replacement
from a pool 100 times larger with the same shares, and gives the rate the factor predicts.

Adds ``label_null_sampling`` to ``bench/results/drift.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drift import ALPHA, HELD_OUT, N_NEW, N_REF, RESULTS  # noqa: E402
from fashion_features import fashion_embeddings  # noqa: E402

from quality.drift import prior_drift  # noqa: E402

RUNS = 20_000


def pool_labels() -> np.ndarray:
    """Labels of the pool the benchmark's runs draw from (as ``bench/drift.Data`` builds it)."""
    y = fashion_embeddings("train", 12000)[1]
    guide = np.flatnonzero(~np.isin(y, HELD_OUT))
    return y[guide[2000 + 200 :]]  # after the head's 2,000 images and the 200 blur sources


def alarm_rate(batches: list[np.ndarray], classes: np.ndarray, priors: np.ndarray) -> float:
    alarms = [
        prior_drift(np.array([np.sum(b == c) for c in classes]), priors, alpha=ALPHA).drifted
        for b in batches
    ]
    return float(np.mean(alarms))


def main() -> None:
    labels = pool_labels()
    classes, counts = np.unique(labels, return_counts=True)
    priors = counts / counts.sum()
    benchmark = [  # the very batches of the benchmark's null runs (same seeds)
        labels[np.random.default_rng([0, run]).permutation(labels.size)[N_REF : N_REF + N_NEW]]
        for run in range(500)
    ]
    rng = np.random.default_rng(7)
    without = [labels[rng.choice(labels.size, N_NEW, replace=False)] for _ in range(RUNS)]
    with_replacement = [labels[rng.choice(labels.size, N_NEW)] for _ in range(RUNS)]
    large = np.repeat(labels, 100)
    large_pool = [large[rng.choice(large.size, N_NEW, replace=False)] for _ in range(RUNS)]
    factor = (labels.size - N_NEW) / (labels.size - 1)
    dof = classes.size - 1
    result = {
        "pool_size": int(labels.size),
        "batch_size": N_NEW,
        "finite_population_factor": factor,
        "predicted_rate_without_replacement": float(
            stats.chi2.sf(stats.chi2.isf(ALPHA, dof) / factor, dof)
        ),
        "benchmark_null_batches": alarm_rate(benchmark, classes, priors),
        "runs": RUNS,
        "without_replacement": alarm_rate(without, classes, priors),
        "with_replacement": alarm_rate(with_replacement, classes, priors),
        "without_replacement_100x_pool": alarm_rate(large_pool, classes, priors),
    }
    print(json.dumps(result, indent=2))
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps(stored | {"label_null_sampling": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
