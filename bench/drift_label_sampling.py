"""The label test's false-alarm rate under both null designs, with and without correction.

The label test holds a batch's label counts against class priors with Pearson's chi-square,
whose null is multinomial: each label an independent draw from the priors. That is the
service's case (the priors are a law the guide declares). The drift benchmark's null is
another design: each 500-image batch is drawn without replacement from a finite pool and held
against that pool's own class shares, so its counts are multivariate hypergeometric, with the
multinomial covariance times ``f = (N - n) / (N - 1)``; the plain test is conservative there.
``prior_drift(..., population_size=N)`` divides the statistic by ``f``, and the benchmark
passes its pool's size.

Rates at alpha = 0.05 on: the benchmark's own 500 null batches; 20,000 batches drawn without
replacement (the benchmark's design); 20,000 drawn with replacement (multinomial, the
service's design); each with and without the correction (the correction is wrong for the
multinomial design and is shown only to say so); and 20,000 drawn without replacement from a
pool 100 times larger, uncorrected.

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


def alarm_rate(
    batches: list[np.ndarray],
    classes: np.ndarray,
    priors: np.ndarray,
    population_size: int | None = None,
) -> float:
    alarms = [
        prior_drift(
            np.array([np.sum(b == c) for c in classes]),
            priors,
            alpha=ALPHA,
            population_size=population_size,
        ).drifted
        for b in batches
    ]
    return float(np.mean(alarms))


def main() -> None:
    labels = pool_labels()
    classes, counts = np.unique(labels, return_counts=True)
    priors, pool = counts / counts.sum(), labels.size
    benchmark = [  # the very batches of the benchmark's null runs (same seeds)
        labels[np.random.default_rng([0, run]).permutation(labels.size)[N_REF : N_REF + N_NEW]]
        for run in range(500)
    ]
    rng = np.random.default_rng(7)
    without = [labels[rng.choice(labels.size, N_NEW, replace=False)] for _ in range(RUNS)]
    with_replacement = [labels[rng.choice(labels.size, N_NEW)] for _ in range(RUNS)]
    large = np.repeat(labels, 100)
    large_pool = [large[rng.choice(large.size, N_NEW, replace=False)] for _ in range(RUNS)]
    factor = (pool - N_NEW) / (pool - 1)
    dof = classes.size - 1
    result = {
        "pool_size": int(pool),
        "batch_size": N_NEW,
        "runs": RUNS,
        "finite_population_factor": factor,
        "benchmark_null_batches": alarm_rate(benchmark, classes, priors, pool),
        "benchmark_null_batches_uncorrected": alarm_rate(benchmark, classes, priors),
        "without_replacement": alarm_rate(without, classes, priors, pool),
        "without_replacement_uncorrected": alarm_rate(without, classes, priors),
        "predicted_rate_without_replacement_uncorrected": float(
            stats.chi2.sf(stats.chi2.isf(ALPHA, dof) / factor, dof)
        ),
        "with_replacement": alarm_rate(with_replacement, classes, priors),
        "with_replacement_wrongly_corrected": alarm_rate(with_replacement, classes, priors, pool),
        "without_replacement_100x_pool_uncorrected": alarm_rate(large_pool, classes, priors),
    }
    print(json.dumps(result, indent=2))
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps(stored | {"label_null_sampling": result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
