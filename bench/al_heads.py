"""The 2x2 of bench/al_curve.py: {random, default strategy} x {supervised, semi-supervised head}.

Every arm starts from the same seed set (2 labels per class) and adds 20 labels a round. Its
head's L2 penalty is chosen by 3-fold cross-validation of the supervised head on the labels
at hand (from ``L2_GRID``, re-chosen whenever the labels have grown by a quarter), so no arm
is handicapped by a penalty tuned for another budget. The semi-supervised arms train the same
softmax head on the labels plus the pool's pseudo-labels from label spreading over the pool's
cosine kNN graph (:mod:`models.semi_supervised`, the product's code); the default strategy
ranks with that head's probabilities. ``balanced_random`` is the second baseline: random
labels, equally many of each class (an oracle a real pool does not allow).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from al_data import DataSet
from al_support import LinearHead

from models.label_spreading import affinity_matrix
from models.selection import DEFAULT_STRATEGY, SelectionInputs, select_batch
from models.semi_supervised import SemiSupervisedSettings, pseudo_labels

BATCH = 20
SEED_PER_CLASS = 2
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
CV_FOLDS = 3
RETUNE_GROWTH = 1.25
ARMS = {
    "random+supervised": ("random", "supervised"),
    "default+supervised": (DEFAULT_STRATEGY, "supervised"),
    "random+semi": ("random", "semi"),
    "default+semi": (DEFAULT_STRATEGY, "semi"),
    "balanced_random+supervised": ("balanced_random", "supervised"),
}


@dataclass
class PoolGraph:
    """A data set's pool with its kNN affinity, built once and shared by every arm and seed."""

    data: DataSet
    affinity: torch.Tensor
    settings: SemiSupervisedSettings


def pool_graph(data: DataSet, settings: SemiSupervisedSettings) -> PoolGraph:
    from models.knn_graph import build_knn_graph

    graph = build_knn_graph(
        data.pool_x.astype(np.float32), np.arange(len(data.pool_y)), k=settings.k, seed=0
    )
    affinity = affinity_matrix(graph.neighbours, graph.similarities, power=settings.power)
    return PoolGraph(data, affinity, settings)


def seed_set(data: DataSet, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(data.pool_y == c), SEED_PER_CLASS, replace=False)
            for c in range(data.n_classes)
        ]
    )


def cv_weight_decay(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> float:
    """The L2 penalty of ``L2_GRID`` with the best 3-fold log-likelihood (stratified folds)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = np.arange(len(members)) % CV_FOLDS
    scores = []
    for decay in L2_GRID:
        total = 0.0
        for k in range(CV_FOLDS):
            train, test = fold != k, fold == k
            if not test.any() or np.unique(y[train]).size < 2:
                continue
            head = LinearHead(x, n_classes)
            head.fit(x[train], y[train], weight_decay=decay)
            logits = head.logits(x[test])
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            total += float(log_p[np.arange(test.sum()), y[test]].sum())
        scores.append(total)
    return L2_GRID[int(np.argmax(scores))]


class ArmHead:
    """One arm's head: supervised or semi-supervised, with its cross-validated L2 penalty."""

    def __init__(self, pool: PoolGraph, kind: str, seed: int) -> None:
        self.pool, self.kind, self.seed = pool, kind, seed
        self.head = LinearHead(pool.data.pool_x, pool.data.n_classes)
        self.decay = L2_GRID[1]
        self.tuned_at = 0

    def fit(self, labeled: np.ndarray) -> None:
        data = self.pool.data
        y = data.pool_y[labeled]
        if len(labeled) >= RETUNE_GROWTH * self.tuned_at:
            self.decay = cv_weight_decay(data.pool_x[labeled], y, data.n_classes, self.seed)
            self.tuned_at = len(labeled)
        if self.kind == "supervised":
            self.head.fit(data.pool_x[labeled], y, weight_decay=self.decay)
            return
        pseudo = pseudo_labels(self.pool.affinity, labeled, y, data.n_classes, self.pool.settings)
        rows = np.concatenate([labeled, pseudo.rows])
        self.head.fit(
            data.pool_x[rows],
            np.concatenate([y, pseudo.labels]),
            weight_decay=self.decay,
            sample_weight=np.concatenate([np.ones(len(y)), pseudo.weights]),
        )

    def accuracy(self) -> float:
        return self.head.accuracy(self.pool.data.test_x, self.pool.data.test_y)


def run_arm(
    pool: PoolGraph, arm: str, seed: int, max_labels: int, target: float, extend: int
) -> list[float]:
    """Held-out accuracy after each round (20, 40, ... labels).

    Rounds go on up to ``max_labels``, and past it up to ``extend`` only while the arm has
    not reached ``target``.
    """
    strategy, kind = ARMS[arm]
    data = pool.data
    rng = np.random.default_rng(seed)
    labeled = seed_set(data, rng)
    order = random_order(data, labeled, strategy, np.random.default_rng(seed + 7919))
    head = ArmHead(pool, kind, seed)
    curve: list[float] = []
    while True:
        head.fit(labeled)
        curve.append(head.accuracy())
        after = len(labeled) + BATCH
        if after > max_labels and (after > extend or max(curve) >= target):
            return curve
        if order is not None:
            labeled = order[:after]
            continue
        unlabeled = np.setdiff1d(np.arange(len(data.pool_y)), labeled)
        trained = head.head.as_trained_head()
        inputs = SelectionInputs(
            trained.predict_proba(data.pool_x[unlabeled]),
            data.pool_x[unlabeled],
            data.pool_x[labeled],
            data.pool_y[labeled],
            k=BATCH,
            seed=seed * 1000 + len(labeled),
            head=trained,
        )
        labeled = np.concatenate([labeled, unlabeled[select_batch(strategy, inputs)]])


def random_order(
    data: DataSet, start: np.ndarray, strategy: str, rng: np.random.Generator
) -> np.ndarray | None:
    """The whole labeling order of a random arm (seed set first); None for other strategies.

    ``balanced_random`` takes the classes in turn, a random image of each.
    """
    rest = np.setdiff1d(np.arange(len(data.pool_y)), start)
    if strategy == "random":
        return np.concatenate([start, rng.permutation(rest)])
    if strategy != "balanced_random":
        return None
    queues = [rng.permutation(rest[data.pool_y[rest] == c]) for c in range(data.n_classes)]
    rounds = max(len(q) for q in queues)
    interleaved = [q[i] for i in range(rounds) for q in queues if i < len(q)]
    return np.concatenate([start, np.asarray(interleaved, dtype=np.int64)])


def full_pool_accuracy(data: DataSet) -> tuple[float, float]:
    """The supervised head on every pool label (L2 by cross-validation): accuracy, penalty."""
    decay = cv_weight_decay(data.pool_x, data.pool_y, data.n_classes, seed=0)
    head = LinearHead(data.pool_x, data.n_classes)
    head.fit(data.pool_x, data.pool_y, weight_decay=decay)
    return head.accuracy(data.test_x, data.test_y), decay


REPORT_BUDGETS = (100, 200, 500, 1000)
RATIOS = {
    "ratio_selection_only": "default+supervised",
    "ratio_head_only": "random+semi",
    "ratio_combined": "default+semi",
}
BASELINE = "random+supervised"


def run_all(
    pool: PoolGraph, seeds: int, max_labels: int, target: float, extend: dict[str, int]
) -> dict[str, list[list[float]]]:
    """Every arm's curve for every seed, two processes at a time (the runs are independent)."""
    import multiprocessing

    jobs = [(arm, seed) for arm in ARMS for seed in range(seeds)]
    global _POOL
    _POOL = pool
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as workers:
        found = workers.starmap(
            _run_job, [(arm, seed, max_labels, target, extend[arm]) for arm, seed in jobs]
        )
    curves: dict[str, list[list[float]]] = {arm: [] for arm in ARMS}
    for (arm, _), curve in zip(jobs, found, strict=True):
        curves[arm].append(curve)
    return curves


_POOL: PoolGraph | None = None


def _run_job(arm: str, seed: int, max_labels: int, target: float, extend: int) -> list[float]:
    torch.set_num_threads(1)
    assert _POOL is not None
    return run_arm(_POOL, arm, seed, max_labels, target, extend)


def summarise(
    curves: dict[str, list[list[float]]],
    first: int,
    target: float,
    max_labels: int,
    extend: dict[str, int],
) -> dict[str, object]:
    """Labels-to-target, the ratios with paired bootstrap CIs, accuracies and paired tests."""
    from al_support import _bootstrap_ratio
    from scipy import stats

    needed: dict[str, np.ndarray] = {}
    arms: dict[str, dict[str, object]] = {}
    columns = (max_labels - first) // BATCH + 1
    for arm, runs in curves.items():
        reached = [_labels_to_target(run, first, target) for run in runs]
        cap = extend[arm] + BATCH
        needed[arm] = np.array([cap if r is None else r for r in reached], dtype=float)
        grid = np.array([run[:columns] for run in runs])
        arms[arm] = {
            "labels_to_target": {
                "mean": float(needed[arm].mean()),
                "median": float(np.median(needed[arm])),
                "per_seed": reached,
                "censored": sum(r is None for r in reached),
            },
            "accuracy_at": {
                str(b): _mean_ci(grid[:, (b - first) // BATCH])
                for b in REPORT_BUDGETS
                if b <= max_labels
            },
            "curve_area": _mean_ci(grid.mean(axis=1)),
            "mean_curve": grid.mean(axis=0).tolist(),
        }
    baseline = np.array([run[:columns] for run in curves[BASELINE]])
    out: dict[str, object] = {"arms": arms}
    for key, arm in RATIOS.items():
        out[key] = float(needed[BASELINE].mean() / needed[arm].mean())
        out[f"{key}_ci"] = _bootstrap_ratio(needed[BASELINE], needed[arm])
    out["ratio_combined_ci_low"] = out["ratio_combined_ci"][0]  # type: ignore[index]
    balanced = "balanced_random+supervised"
    out["ratio_vs_balanced_random"] = float(needed[balanced].mean() / needed["default+semi"].mean())
    out["ratio_vs_balanced_random_ci"] = _bootstrap_ratio(needed[balanced], needed["default+semi"])
    worse = {}
    for arm, runs in curves.items():
        grid = np.array([run[:columns] for run in runs])
        p_values = []
        for column in range(columns):
            diff = grid[:, column] - baseline[:, column]
            p = stats.ttest_1samp(diff, 0.0, alternative="less").pvalue if diff.any() else 1.0
            p_values.append(float(1.0 if np.isnan(p) else p))
        worse[arm] = {"min_p": min(p_values), "never_worse": bool(min(p_values) >= 0.05)}
    out["never_worse_than_random"] = worse
    # The 2x2's arms; class-balanced random is a baseline (an oracle), reported beside them.
    out["never_significantly_worse_than_random"] = all(
        figures["never_worse"] for arm, figures in worse.items() if arm != balanced
    )
    return out


def _labels_to_target(curve: list[float], first: int, target: float) -> int | None:
    for i, accuracy in enumerate(curve):
        if accuracy >= target:
            return first + BATCH * i
    return None


def _mean_ci(values: np.ndarray) -> dict[str, float]:
    """Mean and a 95% t interval over seeds."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    half = (
        float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
        if len(values) > 1
        else 0.0
    )
    mean = float(values.mean())
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def benchmark_heads(
    data: DataSet,
    settings: SemiSupervisedSettings,
    seeds: int,
    max_labels: int,
    extend: dict[str, int],
) -> dict[str, object]:
    """The 2x2 (and balanced random) on one data set: every figure of its report."""
    import time

    started = time.perf_counter()
    full_accuracy, full_decay = full_pool_accuracy(data)
    target = 0.95 * full_accuracy
    graph_started = time.perf_counter()
    pool = pool_graph(data, settings)
    graph_seconds = time.perf_counter() - graph_started
    first = SEED_PER_CLASS * data.n_classes
    curves = run_all(pool, seeds, max_labels, target, extend)
    return {
        "data_set": data.name,
        "pool": len(data.pool_y),
        "held_out": len(data.test_y),
        "dims": data.pool_x.shape[1],
        "seeds": seeds,
        "full_pool_accuracy": full_accuracy,
        "full_pool_weight_decay": full_decay,
        "target_accuracy": target,
        "budgets": list(range(first, max_labels + 1, BATCH)),
        "extended_to": extend,
        "graph_seconds": graph_seconds,
        "seconds": time.perf_counter() - started,
        **summarise(curves, first, target, max_labels, extend),
    }


def plot_heads(report: dict, path: object) -> None:
    """Mean held-out accuracy against labels for each arm, with the target, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    budgets = report["budgets"]
    for arm, figures in report["arms"].items():
        ax.plot(budgets, figures["mean_curve"], label=arm, linewidth=2.5 if "semi" in arm else 1.5)
    ax.axhline(report["target_accuracy"], color="black", linestyle="--", label="target")
    title = f"{report['data_set']}: mean of {report['seeds']} seeds"
    ax.set(xlabel="labels", ylabel="held-out accuracy", title=title)
    ax.set_ylim(
        max(0.0, report["target_accuracy"] - 0.4), min(1.0, report["target_accuracy"] + 0.1)
    )
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
