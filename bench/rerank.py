"""Benchmark: re-ranking a large stored pool after a head retrain, without the backbone.

Builds (once, in ``bench/cache/``) a ``models.vector_store`` of synthetic 1,280-d embeddings:
ten Gaussian clusters, like a pool of ten classes. A linear head is trained on 2,000 of them,
then, in a fresh child process, ``models.rerank.rerank`` streams the whole memory-mapped
store through the head and keeps the 1,000 highest-entropy images.

Wall time counts against other work on a shared machine, so the child's CPU time (user +
system, all threads) is reported beside it. Peak memory is the child's ``VmHWM`` (peak
resident set, mapped file pages included) from ``/proc/self/status``: pages of the store
are released chunk by chunk, so it is bounded by a chunk, the head and the candidates, not
by the store. The baseline, in the same run, loads the first rows into memory and scores
them all with ``TrainedHead.predict_proba`` and a full sort; its rate is compared with the
streamed rate. The store is deleted afterwards unless ``--keep``.

    python bench/rerank.py                 # 1,000,000 embeddings (~5.1 GB on disk)
    python bench/rerank.py --n 100000      # a quicker check
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from models.rerank import rerank  # noqa: E402
from models.training import train_head  # noqa: E402
from models.uncertainty import entropy, rank_by_score  # noqa: E402
from models.vector_store import VectorStore  # noqa: E402

CACHE = ROOT / "bench" / "cache" / "rerank-store"
RESULTS = ROOT / "bench" / "results" / "rerank.json"
HEAD_DIR = CACHE.parent / "rerank-head"
BACKBONE_ID = "synthetic@1280"
N_CLASSES = 10
N_HEAD_TRAIN = 2000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="embeddings in the store")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--k", type=int, default=1000, help="images to keep")
    parser.add_argument("--chunk-rows", type=int, default=32768)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the store in bench/cache/")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def cluster_means(dim: int) -> np.ndarray:
    return np.random.default_rng(1).normal(0.0, 0.6, size=(N_CLASSES, dim)).astype(np.float32)


def build_store(n: int, dim: int) -> VectorStore:
    """The cached store, filled up to ``n`` rows of clustered vectors (ids 0..n-1, shuffled)."""
    store = VectorStore.open(CACHE, dim=dim, backbone_id=BACKBONE_ID)
    means, step = cluster_means(dim), 50_000
    ids = np.random.default_rng(2).permutation(n).astype(np.int64)
    started = time.perf_counter()
    for start in range(len(store), n, step):
        rng = np.random.default_rng(start)
        rows = min(step, n - start)
        vectors = rng.standard_normal((rows, dim), dtype=np.float32)
        vectors += means[rng.integers(0, N_CLASSES, rows)]
        store.append(ids[start : start + rows], vectors)
        print(
            f"  stored {start + rows:,}/{n:,} ({time.perf_counter() - started:.0f} s)", flush=True
        )
    return store


def train_synthetic_head(dim: int):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, N_CLASSES, N_HEAD_TRAIN)
    x = rng.standard_normal((N_HEAD_TRAIN, dim), dtype=np.float32) + cluster_means(dim)[labels]
    names = [f"class-{i}" for i in range(N_CLASSES)]
    return train_head(x, labels, class_names=names, backbone_id=BACKBONE_ID, epochs=50)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def cpu_seconds() -> float:
    """User plus system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    """Measure in a fresh process: open the store, re-rank, report time and peak RSS."""
    head = load_checkpoint(next(HEAD_DIR.glob("*.pt")))
    before = peak_rss_mb()
    cpu_before = cpu_seconds()
    store = VectorStore.open(CACHE, writable=False)
    result = rerank(store, head, entropy, args.k, chunk_rows=args.chunk_rows)
    figures = {
        "seconds": result.seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "n_scored": result.n_scored,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_before_mb": before,
        "top_ids": result.ids[:5].tolist(),
    }
    print(json.dumps(figures))


def baseline(store: VectorStore, head, rows: int, k: int) -> float:
    """Rows per second of the in-memory way: load, ``predict_proba`` (float64), full sort."""
    started = time.perf_counter()
    ids = store.ids()[:rows]
    vectors = store.get(ids)
    order = rank_by_score(entropy(head.predict_proba(vectors)))[:k]
    assert len(order) == min(k, rows)
    return rows / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    needed = args.n * (args.dim * 4 + 8)
    free = shutil.disk_usage(CACHE.parent.parent).free
    if not CACHE.exists() and free < needed + 4 * 2**30:
        raise SystemExit(
            f"need {needed / 2**30:.1f} GB + 4 GB spare on disk, {free / 2**30:.1f} free"
        )
    print(f"store: {args.n:,} x {args.dim} float32 ({needed / 1e9:.1f} GB) in bench/cache/")
    store = build_store(args.n, args.dim)
    head = train_synthetic_head(args.dim)
    shutil.rmtree(HEAD_DIR, ignore_errors=True)
    save_checkpoint(head, HEAD_DIR)
    try:
        runs = [measure(args) for _ in range(2)]  # the first pass may read pages from disk
        base_rate = baseline(store, head, min(args.baseline_rows, args.n), args.k)
    finally:
        if not args.keep:
            shutil.rmtree(CACHE, ignore_errors=True)
            shutil.rmtree(HEAD_DIR, ignore_errors=True)
    best = min(runs, key=lambda run: run["seconds"])
    assert all(run["top_ids"] == best["top_ids"] for run in runs)
    rate = best["n_scored"] / best["seconds"]
    figures = {
        "embeddings": best["n_scored"],
        "dim": args.dim,
        "k": args.k,
        "chunk_rows": args.chunk_rows,
        "seconds": round(best["seconds"], 3),
        "seconds_each_run": [round(run["seconds"], 3) for run in runs],
        "cpu_seconds": round(best["cpu_seconds"], 3),
        "peak_rss_mb": round(max(run["peak_rss_mb"] for run in runs), 1),
        "peak_rss_at_start_mb": round(best["peak_rss_before_mb"], 1),
        "store_mb": round(needed / 2**20, 1),
        "rows_per_s": round(rate),
        "baseline_rows": min(args.baseline_rows, args.n),
        "baseline_rows_per_s": round(base_rate),
        "speedup_vs_baseline": round(rate / base_rate, 2),
        "machine": "2-core AMD EPYC CPU, no GPU",
        "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"re-ranked {figures['embeddings']:,} embeddings in {figures['seconds']:.2f} s "
        f"({rate:,.0f}/s; in-memory baseline {base_rate:,.0f}/s, "
        f"{figures['speedup_vs_baseline']}x), "
        f"peak RSS {figures['peak_rss_mb']:.0f} MB for a {figures['store_mb']:.0f} MB store"
    )


def measure(args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", "--k", str(args.k)]
    command += ["--chunk-rows", str(args.chunk_rows)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
