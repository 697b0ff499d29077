"""Benchmark: images/s from encoded bytes to probabilities + embedding + score.

In one run, on the same images and the same EfficientNet-Lite0 (224 px):

* project: ``models.embed_images`` on its default path (on the CPU: the ONNX Runtime export in
  fp32 on slices of 16; on CUDA: nvJPEG batch decoding overlapped with the bf16 model) and, on
  the CPU, on its opt-in int8 path, then the head's probabilities and their entropy;
* naive: a per-image loop (PIL decode, fp32, batch of 1), the way a simple backend scores;
* host feed: what the GPU path does on the CPU for a batch (read, structure and header check,
  staging, the decoder's input views) on one core, without the device decode or the model
  (``bench/host_feed.py``), on 256 px JPEGs.

Each is timed ``--rounds`` times, interleaved, and the best round of each is kept (the
machine may be shared). A model-only table compares the CPU paths (eager fp32 by slice size,
bf16 autocast, the ONNX Runtime export in fp32 and int8, optionally torch.ao's FX int8 and
torch.compile) with their agreement with eager fp32: embedding cosine and a trained head's
top-1 predictions. With CUDA (or ``--gpu-only`` on a GPU machine) it also measures the GPU
figures of ``bench/gpu_figures.py``: the project end to end on 256 px and 500x375 photo JPEGs
against the model alone and a raw batched nvJPEG decode of the same files.

Imports only ``models`` (torch, torchvision, numpy, pillow), so it runs on a GPU machine
without the web stack or the Fashion-MNIST package (``--gpu-only`` makes its images). Writes
``bench/results/throughput.json``; ``--gpu-only`` and ``--host-feed-only`` merge their figures
into that file and keep the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gpu_figures  # noqa: E402
from bench_scoring import naive_embed_one, random_head, write_synthetic_jpegs  # noqa: E402
from cpu_paths import compare_cpu_paths, trained_head  # noqa: E402
from host_feed import host_feed  # noqa: E402

from models.backbone import Backbone, BackboneSpec, load_backbone  # noqa: E402
from models.datasets import load_fashion_mnist, write_pngs  # noqa: E402
from models.embedding import embed_images  # noqa: E402
from models.head import TrainedHead  # noqa: E402
from models.inference import InferencePlan, plan_inference  # noqa: E402
from models.uncertainty import entropy  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "throughput.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=192, help="CPU images per set (PNG, JPEG)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--table-n", type=int, default=128, help="images per CPU path row")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fx-int8", action="store_true", help="add torch.ao FX int8 (slow)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile (slow)")
    parser.add_argument("--gpu-only", action="store_true", help="GPU figures only, merged")
    parser.add_argument("--host-feed-only", action="store_true", help="host feed only, merged")
    parser.add_argument("--host-n", type=int, default=4096, help="256 px JPEGs for host feed")
    parser.add_argument("--gpu-n", type=int, default=4096, help="images per GPU set")
    parser.add_argument("--gpu-batch-size", type=int, default=256)
    return parser.parse_args()


def score(head: TrainedHead, embeddings: np.ndarray) -> np.ndarray:
    """What every path must produce besides the embeddings: probabilities and a score."""
    return entropy(head.predict_proba(embeddings))


def run_project(
    paths: Sequence[Path], backbone: Backbone, head: TrainedHead, **options: object
) -> float:
    """Images/s of embed_images + probabilities + entropy (after a warm-up batch)."""
    embed_images(paths[:16], backbone, **options)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = embed_images(paths, backbone, **options)  # type: ignore[arg-type]
    scores = score(head, result.embeddings)
    if result.embeddings.shape[0] and torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    assert len(scores) == len(paths) and not result.failures
    return len(paths) / seconds


def run_naive(paths: Sequence[Path], backbone: Backbone, head: TrainedHead) -> float:
    """Images/s of the per-image loop: PIL decode, fp32, batch of 1, then the head."""
    cpu = torch.device("cpu")
    backbone.module.to(cpu, memory_format=torch.contiguous_format)
    with torch.inference_mode():
        naive_embed_one(paths[0], backbone, cpu)
        started = time.perf_counter()
        for path in paths:
            score(head, naive_embed_one(path, backbone, cpu).numpy()[None])
        return len(paths) / (time.perf_counter() - started)


def best_of(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each run ``rounds`` times, interleaved; the best rate of each."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            rates[name].append(run())
            print(f"  {name}: {rates[name][-1]:.1f} images/s", flush=True)
    return {name: max(values) for name, values in rates.items()}


def image_sets(workdir: Path, n: int) -> dict[str, list[Path]]:
    images, _ = load_fashion_mnist("test")
    pngs = write_pngs(images[:n], workdir / "png", names=[f"t{i:05d}" for i in range(n)])
    jpegs = write_synthetic_jpegs(images, workdir / "jpeg", n, 256)
    return {"png": pngs, "jpeg": jpegs}


def cpu_figures(args: argparse.Namespace, backbone: Backbone, head: TrainedHead) -> dict:
    """End-to-end rates of the naive loop, the default path and the opt-in int8 path."""
    cpu = torch.device("cpu")
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="throughput-") as folder:
        for name, paths in image_sets(Path(folder), args.n).items():
            print(f"CPU, {len(paths)} {name} images", flush=True)
            options = {"device": cpu, "batch_size": args.batch_size}
            rates = best_of(
                args.rounds,
                {
                    "naive": lambda p=paths: run_naive(p, backbone, head),
                    "default": lambda p=paths, o=options: run_project(p, backbone, head, **o),
                    "int8": lambda p=paths, o=options: run_project(
                        p, backbone, head, precision="int8", **o
                    ),
                },
            )
            for path, rate in rates.items():
                figures[f"cpu_{name}_{path}_images_per_s"] = round(rate, 1)
    return {**summary(figures), **figures, "cpu_threads": torch.get_num_threads()}


def summary(figures: dict[str, object]) -> dict[str, object]:
    """The issue's fields: the slower image set of each path against the faster naive one."""
    cpu = torch.device("cpu")

    def rate(path: str, pick: Callable[..., float]) -> float:
        return pick(figures[f"cpu_{kind}_{path}_images_per_s"] for kind in ("png", "jpeg"))

    naive, default, fastest = rate("naive", max), rate("default", min), rate("int8", min)
    return {
        "cpu_images_per_s": fastest,
        "cpu_naive_images_per_s": naive,
        "cpu_speedup_vs_naive": round(fastest / naive, 2),
        "cpu_path": describe(plan_inference(cpu, "int8")) + " (opt-in: precision int8)",
        "cpu_default_images_per_s": default,
        "cpu_default_speedup_vs_naive": round(default / naive, 2),
        "cpu_default_path": describe(plan_inference(cpu)),
        "cpu_cores": os.cpu_count(),
    }


def describe(plan: InferencePlan) -> str:
    """Runtime, precision and slice size of ``plan`` in words."""
    runtime = "ONNX Runtime" if plan.runtime == "onnxruntime" else "PyTorch eager"
    return f"{runtime} {plan.precision}, slices of {plan.slice_size}"


def host_feed_figures(args: argparse.Namespace) -> dict:
    """``host_feed_images_per_s`` on ``--host-n`` 256 px JPEGs, batches of 256, one core."""
    with tempfile.TemporaryDirectory(prefix="throughput-feed-") as folder:
        paths = write_synthetic_jpegs(gpu_figures.garment_images(), Path(folder), args.host_n, 256)
        print(f"host feed, {len(paths)} 256 px JPEGs, one core", flush=True)
        return host_feed(paths, batch_size=256, rounds=args.rounds + 1, image_size=224)


def gpu_run(args: argparse.Namespace, backbone: Backbone, head: TrainedHead) -> dict:
    """The GPU fields: 256 px JPEGs and 500x375 photos, every rate in the same run."""
    options = {"device": torch.device("cuda"), "batch_size": args.gpu_batch_size}
    with tempfile.TemporaryDirectory(prefix="throughput-gpu-") as folder:
        images = gpu_figures.garment_images()
        sets = {"jpeg": write_synthetic_jpegs(images, Path(folder) / "jpeg", args.gpu_n, 256)}
        sets["photo"], source = gpu_figures.write_photo_jpegs(Path(folder) / "photo", args.gpu_n)
        print(f"GPU, {args.gpu_n} images per set; photos: {source}", flush=True)
        runs = gpu_figures.runs(
            sets, backbone, lambda p: run_project(p, backbone, head, **options), args.gpu_batch_size
        )
        rates = best_of(args.rounds, runs)
    return gpu_figures.summary(
        rates, photo_source=source, batch_size=args.gpu_batch_size, n=args.gpu_n
    )


def main() -> None:
    args = parse_args()
    backbone = load_backbone(BackboneSpec())
    merge = args.gpu_only or args.host_feed_only
    figures: dict[str, object] = (
        json.loads(RESULTS.read_text()) if merge and RESULTS.exists() else {}
    )
    if not merge:
        head = trained_head(backbone)
        print("CPU paths, model only", flush=True)
        table = compare_cpu_paths(
            backbone, head, n=args.table_n, fx_int8=args.fx_int8, compile_=args.compile
        )
        figures.update(cpu_figures(args, backbone, head))
        figures["cpu_paths"] = table
        figures["machine"] = "2-core AMD EPYC CPU, no GPU"
        figures["date"] = time.strftime("%Y-%m-%d")
    if not args.gpu_only:
        figures.update(host_feed_figures(args))
        figures["host_feed_machine"] = cpu_name()
        figures["host_feed_date"] = time.strftime("%Y-%m-%d")
    if torch.cuda.is_available() and not args.host_feed_only:
        figures.update(gpu_run(args, backbone, random_head(backbone)))
        figures["gpu_machine"] = f"{torch.cuda.get_device_name()}, {os.cpu_count()} CPU cores"
        figures["gpu_date"] = time.strftime("%Y-%m-%d")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


def cpu_name() -> str:
    """The CPU's model name and core count, from /proc/cpuinfo where there is one."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if "model name" in line)
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
