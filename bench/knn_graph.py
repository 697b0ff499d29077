"""Benchmark: the cosine kNN graph of 1,000,000 stored 1,280-d embeddings, and one extension.

Builds (once, in ``bench/cache/``) a ``models.vector_store`` of synthetic embeddings: a
Gaussian mixture of 1,000 centres whose spread falls off as ``1 / sqrt(i)`` along the i-th
axis, so the variance is spread over many dimensions (a 256-d basis keeps about 80 % of it)
rather than the handful a PCA finds trivially. Then, in a fresh child process, it times
``build_knn_graph`` over the store, saves the graph, times one ``extend_knn_graph`` of 10,000
new rows, and measures recall@k of 1,000 seeded rows against an exact search streamed over
the store.

Memory: ``VmHWM`` of the child (peak resident set, mapped store pages included) and, sampled
every 0.1 s, the peaks of its anonymous memory (``RssAnon``: what the build allocates) and of
its mapped file pages (``RssFile``: the store's pages, released chunk by chunk).

    nice -n 10 python bench/knn_graph.py               # 1,000,000 rows (~5.1 GB on disk)
    nice -n 10 python bench/knn_graph.py --n 100000    # a quicker check, results not written
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.knn_graph import KnnGraph, build_knn_graph, extend_knn_graph  # noqa: E402
from models.vector_store import VectorStore  # noqa: E402

CACHE = ROOT / "bench" / "cache"
RESULTS = ROOT / "bench" / "results" / "knn_graph.json"
BACKBONE_ID = "synthetic-mixture@1280"
CENTRES = 1000
STEP = 50_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="rows in the store")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--extend", type=int, default=10_000, help="rows added by extend")
    parser.add_argument("--queries", type=int, default=1000, help="rows whose recall is measured")
    parser.add_argument("--keep", action="store_true", help="keep the store in bench/cache/")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def store_dir(n: int) -> Path:
    return CACHE / f"knn-store-{n}"


def mixture(rows: int, dim: int, seed: int) -> np.ndarray:
    """``rows`` vectors of the benchmark's mixture; its centres are fixed, the draws seeded."""
    scales = np.arange(1, dim + 1, dtype=np.float32) ** -0.5
    centres = np.random.default_rng(0).standard_normal((CENTRES, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, dim), dtype=np.float32) * scales
    vectors += centres[rng.integers(0, CENTRES, rows)] * (3 * scales)
    return vectors + 0.3  # all-positive-ish, like pooled activations


def build_store(n: int, dim: int) -> VectorStore:
    """The cached store, filled up to ``n`` rows (shuffled ids 0..n-1), ``STEP`` at a time."""
    store = VectorStore.open(store_dir(n), dim=dim, backbone_id=BACKBONE_ID)
    ids = np.random.default_rng(2).permutation(n).astype(np.int64)
    started = time.perf_counter()
    for start in range(len(store), n, STEP):
        rows = min(STEP, n - start)
        store.append(ids[start : start + rows], mixture(rows, dim, seed=1000 + start))
        print(
            f"  stored {start + rows:,}/{n:,} ({time.perf_counter() - started:.0f} s)", flush=True
        )
    return store


class MemoryWatch:
    """Peaks of this process's ``RssAnon`` and ``RssFile``, sampled every 0.1 s."""

    def __init__(self) -> None:
        self.peaks = {"RssAnon": 0.0, "RssFile": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for key, value in status_mb(*self.peaks).items():
                self.peaks[key] = max(self.peaks[key], value)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def status_mb(*keys: str) -> dict[str, float]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in keys:
            found[name] = int(value.split()[0]) / 1024
    return found


def exact_neighbours(store: VectorStore, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers ``(q, k)`` of the exact top-k cosine neighbours of rows ``queries``."""
    wanted = store.get(store.ids()[queries])
    wanted /= np.linalg.norm(wanted, axis=1, keepdims=True)
    best = np.empty((len(queries), 0), dtype=np.int64)
    scores = np.empty((len(queries), 0), dtype=np.float32)
    for chunk in store.chunks(16_384):
        block = chunk.vectors / np.linalg.norm(chunk.vectors, axis=1, keepdims=True)
        similar = wanted @ block.T
        rows = chunk.start + np.arange(len(block))
        similar[queries[:, None] == rows[None, :]] = -np.inf
        scores = np.concatenate([scores, similar], axis=1)
        best = np.concatenate([best, np.broadcast_to(rows, similar.shape)], axis=1)
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # recall ignores the order
        scores, best = np.take_along_axis(scores, keep, 1), np.take_along_axis(best, keep, 1)
    return best


def child(args: argparse.Namespace) -> None:
    """In a fresh process: build, save, extend, then recall; print the figures as JSON."""
    watch = MemoryWatch()
    store = VectorStore.open(store_dir(args.n), writable=False)
    started = time.perf_counter()
    graph = build_knn_graph(store, k=args.k, seed=0)
    build_s = time.perf_counter() - started
    build_hwm = status_mb("VmHWM")["VmHWM"]
    build_peaks = dict(watch.peaks)
    started = time.perf_counter()
    graph.save(CACHE / f"knn-graph-{args.n}")
    save_s = time.perf_counter() - started
    new_ids = np.arange(args.n, args.n + args.extend, dtype=np.int64)
    new_vectors = mixture(args.extend, args.dim, seed=7)
    started = time.perf_counter()
    extended = extend_knn_graph(graph, new_vectors, new_ids)
    extend_s = time.perf_counter() - started
    peaks = watch.stop()
    queries = np.sort(np.random.default_rng(5).choice(args.n, args.queries, replace=False))
    started = time.perf_counter()
    truth = exact_neighbours(store, queries, args.k)
    hits = [
        len(np.intersect1d(a, b)) for a, b in zip(graph.neighbours[queries], truth, strict=True)
    ]
    figures = {
        "build_s": build_s,
        "build_vmhwm_mb": build_hwm,
        "build_peak_anon_mb": build_peaks["RssAnon"],
        "build_peak_file_mb": build_peaks["RssFile"],
        "save_s": save_s,
        "extend_s": extend_s,
        "extend_rows": extended.n - graph.n,
        "peak_anon_with_extend_mb": peaks["RssAnon"],
        "recall_at_k": float(np.mean(hits)) / args.k,
        "exact_search_s": time.perf_counter() - started,
        "n_lists": len(graph.index.centroids) if graph.index.centroids is not None else 0,
        "dims": graph.index.rows.shape[1],
        "method": "exact" if graph.exact else "ivf",
        "extended_old_rows_changed": int(
            np.sum(np.any(extended.neighbours[: graph.n] != graph.neighbours, axis=1))
        ),
    }
    assert KnnGraph.load(CACHE / f"knn-graph-{args.n}", ids=graph.ids).n == graph.n
    print(json.dumps(figures))


def machine() -> str:
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    flags = Path("/proc/cpuinfo").read_text()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{os.cpu_count()}-core {names[0] if names else 'unknown CPU'} ({simd}), no GPU"


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    needed = args.n * (args.dim * 4 + 8)
    free = shutil.disk_usage(CACHE.parent).free
    if not store_dir(args.n).exists() and free < needed + 4 * 2**30:
        raise SystemExit(f"need {needed / 2**30:.1f} GB + 4 GB spare, {free / 2**30:.1f} free")
    print(f"store: {args.n:,} x {args.dim} float32 ({needed / 1e9:.1f} GB) in bench/cache/")
    build_store(args.n, args.dim)
    command = [sys.executable, __file__, "--child", "--n", str(args.n), "--k", str(args.k)]
    command += [
        "--extend",
        str(args.extend),
        "--queries",
        str(args.queries),
        "--dim",
        str(args.dim),
    ]
    try:
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    finally:
        if not args.keep:
            shutil.rmtree(store_dir(args.n), ignore_errors=True)
        shutil.rmtree(CACHE / f"knn-graph-{args.n}", ignore_errors=True)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = {
        "rows": args.n,
        "dim": args.dim,
        "k": args.k,
        "method": run["method"],
        "pca_dims": run["dims"],
        "n_lists": run["n_lists"],
        "knn_build_s_1m" if args.n == 1_000_000 else "knn_build_s": round(run["build_s"], 1),
        "knn_build_peak_rss_mb": round(run["build_vmhwm_mb"], 1),
        "knn_build_peak_anon_mb": round(run["build_peak_anon_mb"], 1),
        "knn_build_peak_mapped_files_mb": round(run["build_peak_file_mb"], 1),
        "child_ru_maxrss_mb": round(children.ru_maxrss / 1024, 1),
        "store_mb": round(needed / 2**20, 1),
        "recall_at_k": round(run["recall_at_k"], 4),
        "recall_queries": args.queries,
        "save_s": round(run["save_s"], 1),
        "extend_rows": run["extend_rows"],
        "extend_s": round(run["extend_s"], 1),
        "extend_old_rows_updated": run["extended_old_rows_changed"],
        "peak_anon_with_extend_mb": round(run["peak_anon_with_extend_mb"], 1),
        "child_cpu_s": round(children.ru_utime + children.ru_stime, 1),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(figures, indent=2))
    if args.n == 1_000_000:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
