"""Exactness and speed of quality/ agreement and consensus against reference implementations.

1. Random annotation matrices with missing values: Krippendorff's alpha against the
   `krippendorff` package, pairwise Cohen's kappa against scikit-learn on each pair's
   overlapping units, Fleiss' kappa against statsmodels (`aggregate_raters` + `fleiss_kappa`),
   and Dawid-Skene against crowd-kit's `DawidSkene` (same soft majority-vote start, same
   number of EM iterations): labels and posteriors.
2. Published worked examples (Krippendorff 2011 and Wikipedia for alpha; Fleiss 1971 and
   Wikipedia for Fleiss' kappa).
3. One new annotation on 100,000 units x 5 annotators x 20 classes: the incremental update
   against `krippendorff.alpha` recomputing, with their values compared.

crowd-kit is not a project dependency: `make bench-references` installs it (without its
text-model dependencies) under bench/cache/crowdkit. Writes bench/results/agreement.json.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CROWDKIT_DIR = ROOT / "bench" / "cache" / "crowdkit"

from quality.agreement import cohen_kappa_pairwise, fleiss_kappa, krippendorff_alpha  # noqa: E402
from quality.consensus import dawid_skene  # noqa: E402
from quality.incremental import IncrementalAgreement  # noqa: E402
from quality.ratings import MISSING  # noqa: E402

# Published examples: one-based values, 0 for missing, rows split by '|' (alpha: one row per
# coder; Fleiss 1971: one row per patient; Wikipedia's Fleiss example: counts per category).
KRIPPENDORFF_2011 = (
    "1 2 3 3 2 1 4 1 2 0 0 0|1 2 3 3 2 2 4 1 2 5 0 3|"
    "0 3 3 3 2 3 4 2 2 5 1 0|1 2 3 3 2 4 4 1 2 5 1 0"
)
WIKIPEDIA_ALPHA = (
    "0 0 0 0 0 3 4 1 2 1 1 3 3 0 3|1 0 2 1 3 3 4 3 0 0 0 0 0 0 0|0 0 2 1 3 4 4 0 2 1 1 3 3 0 4"
)
FLEISS_1971 = (
    "4 4 4 4 4 4|2 2 2 5 5 5|2 3 3 3 3 5|5 5 5 5 5 5|2 2 2 4 4 4|1 1 3 3 3 3|3 3 3 3 5 5|"
    "1 1 3 3 3 4|1 1 4 4 4 4|5 5 5 5 5 5|1 4 4 4 4 4|1 2 4 4 4 4|2 2 2 3 3 3|1 4 4 4 4 4|"
    "2 2 4 4 4 5|3 3 3 3 3 5|1 1 1 4 5 5|1 1 1 1 1 2|2 2 4 4 4 4|1 3 3 5 5 5|5 5 5 5 5 5|"
    "2 4 4 4 4 4|2 2 4 5 5 5|1 1 4 4 4 4|1 4 4 4 4 5|2 2 2 2 2 4|1 1 1 1 5 5|2 2 4 4 4 4|"
    "1 3 3 3 3 3|5 5 5 5 5 5"
)
WIKIPEDIA_FLEISS = (
    "0 0 0 0 14|0 2 6 4 2|0 0 3 5 6|0 3 9 2 0|2 2 8 1 1|"
    "7 7 0 0 0|3 2 6 3 0|2 5 3 2 2|6 5 2 1 0|0 2 2 3 7"
)


def parse(text: str) -> np.ndarray:
    return np.array([[int(v) for v in row.split()] for row in text.split("|")])


def published_examples() -> dict[str, dict[str, float]]:
    """Our values against the published ones, rounded as published (3 decimals)."""
    one_based = lambda a: np.where(a == 0, MISSING, a - 1)  # noqa: E731
    counts = parse(WIKIPEDIA_FLEISS)
    fleiss_wiki = np.array([np.repeat(np.arange(5), row) for row in counts])
    ours = {
        "krippendorff_2011_alpha": krippendorff_alpha(one_based(parse(KRIPPENDORFF_2011)).T, 5),
        "wikipedia_krippendorff_alpha": krippendorff_alpha(one_based(parse(WIKIPEDIA_ALPHA)).T, 4),
        "fleiss_1971_kappa": fleiss_kappa(one_based(parse(FLEISS_1971)), 5),
        "wikipedia_fleiss_kappa": fleiss_kappa(fleiss_wiki, 5),
    }
    published = {
        "krippendorff_2011_alpha": 0.743,
        "wikipedia_krippendorff_alpha": 0.691,
        "fleiss_1971_kappa": 0.430,
        "wikipedia_fleiss_kappa": 0.210,
    }
    return {k: {"ours": ours[k].value, "published": published[k]} for k in published}


def random_matrix(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A matrix with a hidden truth, annotators of mixed skill and 0-50% missing ratings."""
    n_units, n_annotators, n_classes = rng.integers(5, 41), rng.integers(2, 7), rng.integers(2, 6)
    truth = rng.integers(0, n_classes, n_units)
    skill = rng.uniform(0.1, 0.95, n_annotators)
    noisy = rng.random((n_units, n_annotators)) > skill
    ratings = np.where(noisy, rng.integers(0, n_classes, (n_units, n_annotators)), truth[:, None])
    ratings[rng.random(ratings.shape) < rng.uniform(0.0, 0.5)] = MISSING
    return ratings, int(n_classes)


def alpha_diff(ratings: np.ndarray, n_classes: int) -> float | None:
    ours = krippendorff_alpha(ratings, n_classes).value
    if math.isnan(ours):
        return None  # one class only: undefined, and the package raises
    data = np.where(ratings == MISSING, np.nan, ratings).T.astype(float)
    reference = krippendorff.alpha(
        reliability_data=data, level_of_measurement="nominal", value_domain=range(n_classes)
    )
    return abs(ours - reference)


def cohen_diff(ratings: np.ndarray, n_classes: int) -> float | None:
    table = cohen_kappa_pairwise(ratings, n_classes)
    worst = None
    for a, b in itertools.combinations(range(ratings.shape[1]), 2):
        if math.isnan(table.kappa[a, b]):
            continue
        both = (ratings[:, a] != MISSING) & (ratings[:, b] != MISSING)
        reference = cohen_kappa_score(ratings[both, a], ratings[both, b], labels=range(n_classes))
        worst = max(worst or 0.0, abs(table.kappa[a, b] - reference))
    return worst


def fleiss_diff(ratings: np.ndarray, n_classes: int) -> float | None:
    result = fleiss_kappa(ratings, n_classes)
    if math.isnan(result.value):
        return None
    kept = ratings[(ratings != MISSING).sum(axis=1) == result.raters_per_unit]
    table, _ = aggregate_raters(np.array([row[row != MISSING] for row in kept]), n_cat=n_classes)
    return abs(result.value - statsmodels_fleiss(table))


def crowdkit_fit(ratings: np.ndarray, iterations: int):  # noqa: ANN201
    import pandas as pd
    from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

    units, workers = np.nonzero(ratings != MISSING)
    frame = pd.DataFrame({"task": units, "worker": workers, "label": ratings[units, workers]})
    return CrowdKitDawidSkene(n_iter=iterations, tol=-np.inf).fit(frame)


def ds_compare(ratings: np.ndarray, n_classes: int, iterations: int) -> dict[str, float]:
    start = time.perf_counter()
    reference = crowdkit_fit(ratings, iterations)
    reference_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ours = dawid_skene(ratings, n_classes, max_iter=iterations, tol=None)
    our_seconds = time.perf_counter() - start
    tasks = reference.labels_.index.to_numpy()
    probas = reference.probas_.reindex(columns=range(n_classes), fill_value=0.0).to_numpy()
    top_two = np.sort(probas, axis=1)[:, -2:] if n_classes > 1 else np.ones((len(tasks), 2))
    # crowd-kit breaks exact ties by its column order (first label seen); ours by lowest index.
    differ = ours.labels[tasks] != reference.labels_.to_numpy()
    tied = top_two[:, 1] - top_two[:, 0] <= 1e-9
    return {
        "mismatches": int(np.count_nonzero(differ & ~tied)),
        "tie_breaks": int(np.count_nonzero(differ & tied)),
        "diff": float(np.abs(ours.posteriors[tasks] - probas).max()),
        "ours_s": our_seconds,
        "reference_s": reference_seconds,
    }


def check_matrices(count: int, iterations: int, with_crowdkit: bool, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    worst = {"krippendorff": 0.0, "sklearn_cohen": 0.0, "statsmodels_fleiss": 0.0}
    checked = {key: 0 for key in worst}
    ds = {"mismatches": 0, "tie_breaks": 0, "units": 0, "diff": 0.0}
    ds |= {"ours_s": 0.0, "reference_s": 0.0}
    for _ in range(count):
        ratings, n_classes = random_matrix(rng)
        for key, fn in (
            ("krippendorff", alpha_diff),
            ("sklearn_cohen", cohen_diff),
            ("statsmodels_fleiss", fleiss_diff),
        ):
            diff = fn(ratings, n_classes)
            if diff is not None:
                worst[key], checked[key] = max(worst[key], diff), checked[key] + 1
        if with_crowdkit:
            one = ds_compare(ratings, n_classes, iterations)
            ds["mismatches"] += one["mismatches"]
            ds["tie_breaks"] += one["tie_breaks"]
            ds["units"] += int(np.count_nonzero((ratings != MISSING).any(axis=1)))
            ds["diff"] = max(ds["diff"], one["diff"])
            ds["ours_s"] += one["ours_s"]
            ds["reference_s"] += one["reference_s"]
    if with_crowdkit:
        worst["crowdkit_dawid_skene_posteriors"] = ds["diff"]
        checked["crowdkit_dawid_skene"] = count
    return {"worst": worst, "checked": checked, "ds": ds}


def incremental_speed(n_units: int, n_annotators: int, n_classes: int, updates: int) -> dict:
    """Time one new annotation: incremental update + alpha against a full recompute."""
    rng = np.random.default_rng(7)
    ratings = rng.integers(0, n_classes, (n_units, n_annotators))
    ratings[rng.random(ratings.shape) < 0.3] = MISSING
    state = IncrementalAgreement.from_ratings(ratings, n_classes)
    empty = np.argwhere(ratings == MISSING)[rng.permutation(updates)]
    start = time.perf_counter()
    for unit, annotator in empty:
        state.set(int(unit), int(annotator), int(rng.integers(0, n_classes)))
        value = state.alpha().value
    per_update = (time.perf_counter() - start) / updates
    final = state.ratings
    data = np.where(final == MISSING, np.nan, final).T.astype(float)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        reference = krippendorff.alpha(
            reliability_data=data, level_of_measurement="nominal", value_domain=range(n_classes)
        )
        timings.append(time.perf_counter() - start)
    full = krippendorff_alpha(final, n_classes).value
    return {
        "shape": [n_units, n_annotators, n_classes],
        "updates_timed": updates,
        "incremental_seconds_per_update": per_update,
        "reference_seconds": float(np.median(timings)),
        "incremental_speedup": float(np.median(timings)) / per_update,
        "incremental_alpha": value,
        "reference_alpha": reference,
        "incremental_vs_reference_abs_diff": abs(value - reference),
        "incremental_equals_full_recompute": value == full,
    }


def have_crowdkit() -> str | None:
    sys.path.insert(0, str(CROWDKIT_DIR))
    try:
        from importlib.metadata import version

        import crowdkit.aggregation  # noqa: F401

        return version("crowd-kit")
    except ImportError:
        return None


def summarise(matrices: dict, speed: dict, crowdkit_version: str | None, args) -> dict:  # noqa: ANN001
    examples = published_examples()
    ds = matrices["ds"]
    return {
        "matrices_checked": args.matrices,
        "max_abs_diff_vs_references": max(matrices["worst"].values()),
        "max_abs_diff_by_reference": matrices["worst"],
        "matrices_with_defined_value": matrices["checked"],
        "within_1e-9": all(v <= 1e-9 for v in matrices["worst"].values()),
        "dawid_skene_reference": f"crowd-kit {crowdkit_version}" if crowdkit_version else None,
        "dawid_skene_iterations": args.ds_iterations,
        "dawid_skene_label_mismatches": ds["mismatches"] if crowdkit_version else None,
        "dawid_skene_exact_ties_broken_differently": ds["tie_breaks"],
        "dawid_skene_units_compared": ds["units"],
        "dawid_skene_seconds": {"ours": ds["ours_s"], "crowd_kit": ds["reference_s"]},
        "published_examples_ok": all(
            round(v["ours"], 3) == v["published"] for v in examples.values()
        ),
        "published_examples": examples,
        **speed,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "date": datetime.date.today().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--matrices", type=int, default=1000)
    parser.add_argument("--ds-iterations", type=int, default=10)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "agreement.json")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # crowd-kit's pandas deprecation notices
    crowdkit_version = have_crowdkit()
    if crowdkit_version is None:
        print("crowd-kit not found: run `make bench-references`; Dawid-Skene not compared")
    start = time.perf_counter()
    matrices = check_matrices(
        args.matrices, args.ds_iterations, crowdkit_version is not None, args.seed
    )
    seconds = time.perf_counter() - start
    speed = incremental_speed(args.units, 5, 20, args.updates)
    result = summarise(matrices, speed, crowdkit_version, args) | {"matrix_seconds": seconds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"incremental update {speed['incremental_seconds_per_update'] * 1e6:.1f} us vs "
        f"krippendorff.alpha {speed['reference_seconds']:.3f} s: "
        f"{speed['incremental_speedup']:,.0f}x"
    )


if __name__ == "__main__":
    main()
