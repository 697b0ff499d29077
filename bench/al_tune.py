"""How the semi-supervised head's settings were chosen: grids on the two tuning sets only.

The tuning sets are sklearn digits (raw 8x8 pixels, the same split as ``bench/al_curve.py``)
and a validation split of Fashion-MNIST's *training* images (50,000 of them as the pool,
10,000 others as the held-out set; the official test split is never looked at). MNIST, the
third data set of the benchmark, is not used here. Each setting is scored by the held-out
accuracy of the random arm's semi-supervised head (``bench/al_heads.py``, cross-validated
L2 as in the benchmark) at a few label budgets, averaged over seeds; the supervised head is
printed first as the reference. The settings in ``models.semi_supervised`` are the ones this
chose (docs/benchmarks.md has the tables).

``python bench/al_tune.py digits|fashion-val [--budgets 20,100,300] [--seeds 2]
[--grid NAME=V1,V2 ...]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from al_data import DataSet, digits, fashion  # noqa: E402
from al_heads import ArmHead, PoolGraph, random_order, seed_set  # noqa: E402

from models.knn_graph import build_knn_graph  # noqa: E402
from models.label_spreading import affinity_matrix  # noqa: E402
from models.semi_supervised import SemiSupervisedSettings  # noqa: E402

DEFAULT_GRID = {
    "k": [10, 20],
    "alpha": [0.9, 0.99],
    "min_certainty": [0.1, 0.4],
    "pseudo_weight": [0.5, 2.0],
}


def fashion_validation() -> DataSet:
    """50,000 training images as the pool, 10,000 other training images held out."""
    full = fashion(128)
    order = np.random.default_rng(99).permutation(len(full.pool_y))
    pool, held = order[10000:], order[:10000]
    return DataSet(
        "fashion-val", full.pool_x[pool], full.pool_y[pool], full.pool_x[held], full.pool_y[held]
    )


def accuracies(
    data: DataSet,
    neighbours: np.ndarray,
    similarities: np.ndarray,
    settings: SemiSupervisedSettings,
    kind: str,
    budgets: list[int],
    seeds: int,
) -> np.ndarray:
    affinity = affinity_matrix(
        neighbours[:, : settings.k], similarities[:, : settings.k], power=settings.power
    )
    pool = PoolGraph(data, affinity, settings)
    runs = []
    for seed in range(seeds):
        start = seed_set(data, np.random.default_rng(seed))
        order = random_order(data, start, "random", np.random.default_rng(seed + 7919))
        head = ArmHead(pool, kind, seed)
        row = []
        for budget in budgets:
            head.fit(order[:budget])
            row.append(head.accuracy())
        runs.append(row)
    return np.mean(runs, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_set", choices=["digits", "fashion-val"])
    parser.add_argument("--budgets", default="20,100,300")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--grid", nargs="*", default=[], help="NAME=V1,V2 (replaces the grid)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    grid: dict[str, list[float]] = dict(DEFAULT_GRID)
    if args.grid:
        grid = {}
        for item in args.grid:
            name, values = item.split("=")
            grid[name] = [float(v) if "." in v else int(v) for v in values.split(",")]
    data = digits() if args.data_set == "digits" else fashion_validation()
    budgets = [int(b) for b in args.budgets.split(",")]
    graph = build_knn_graph(
        data.pool_x.astype(np.float32), np.arange(len(data.pool_y)), k=max(grid["k"]), seed=0
    )
    base = SemiSupervisedSettings()
    reference = accuracies(
        data, graph.neighbours, graph.similarities, base, "supervised", budgets, args.seeds
    )
    print(f"{data.name}, budgets {budgets}, {args.seeds} seeds")
    print(f"supervised {np.round(reference, 4).tolist()}")
    for values in itertools.product(*grid.values()):
        change = dict(zip(grid, values, strict=True))
        settings = dataclasses.replace(base, **change)
        started = time.perf_counter()
        found = accuracies(
            data, graph.neighbours, graph.similarities, settings, "semi", budgets, args.seeds
        )
        print(
            f"{change} {np.round(found, 4).tolist()} mean {found.mean():.4f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
