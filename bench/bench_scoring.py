"""Benchmark: scoring an image pool one image at a time versus in batches.

Measures, in one run and on the same images:

* naive: a per-image loop (PIL decode, resize, batch of 1, fp32, contiguous layout), the
  way a simple prediction backend scores images;
* batched: ``models.embed_images`` (DataLoader decoding, batches, channels-last, bf16
  autocast on CUDA) followed by the head's ``predict_proba`` and ``entropy``;
* decode only: the same DataLoader without the model, the ceiling the batched path can reach.

It imports only ``models`` plus numpy, torch, pillow and the standard library, so it runs on
a GPU machine that has no web stack. Usage::

    python bench/bench_scoring.py                      # 512 Fashion-MNIST test PNGs
    python bench/bench_scoring.py --synthetic-jpegs 4096 --jpeg-size 256 --device cuda
    python bench/bench_scoring.py --images path/to/folder --n 1000

A human-readable table is printed, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import (  # noqa: E402 - importable only once the project root is on the path
    DEFAULT_MAX_PIXELS,
    Backbone,
    BackboneSpec,
    EmbeddingResult,
    TrainedHead,
    embed_images,
    entropy,
    load_backbone,
    load_fashion_mnist,
    load_rgb,
    resolve_device,
    write_pngs,
)
from models.embedding import ImagePoolDataset  # noqa: E402
from models.head import head_version  # noqa: E402

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
N_CLASSES = 10


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="images to score (default 512)")
    parser.add_argument(
        "--naive-n",
        type=int,
        default=None,
        help="images for the slow per-image loop (default: min(n, 128))",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="DataLoader workers (default: 0 on CPU, up to 16 on CUDA)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--architecture", default="efficientnet_lite0")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, help="score the image files in this folder")
    source.add_argument(
        "--synthetic-jpegs",
        type=int,
        metavar="N",
        help="write N RGB JPEGs made from Fashion-MNIST and score them",
    )
    parser.add_argument(
        "--jpeg-size", type=int, default=256, help="side of --synthetic-jpegs images"
    )
    parser.add_argument("--fashion-mnist-dir", type=Path, help="folder with the four idx .gz files")
    parser.add_argument(
        "--workdir", type=Path, help="where generated images go (default: a temp dir)"
    )
    return parser.parse_args(argv)


def collect_images(args: argparse.Namespace, workdir: Path) -> tuple[list[Path], str]:
    """The image paths to score and a short description of where they came from."""
    if args.images is not None:
        if not args.images.is_dir():
            raise SystemExit(f"--images {args.images} is not a folder")
        files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SystemExit(
                f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.images}"
            )
        return files[: args.n], f"folder {args.images.name}"
    try:
        images, _ = load_fashion_mnist("test", directory=args.fashion_mnist_dir)
    except FileNotFoundError as err:
        raise SystemExit(f"no images to benchmark: {err}; or pass --images DIR") from err
    if args.synthetic_jpegs is not None:
        paths = write_synthetic_jpegs(
            images, workdir / "jpegs", args.synthetic_jpegs, args.jpeg_size
        )
        return (
            paths,
            f"{len(paths)} synthetic {args.jpeg_size}px JPEGs from Fashion-MNIST",
        )
    n = min(args.n, len(images))
    paths = write_pngs(images[:n], workdir / "pngs", names=[f"test-{i:05d}" for i in range(n)])
    return paths, "Fashion-MNIST test PNGs (28x28 grey)"


def write_synthetic_jpegs(images: np.ndarray, directory: Path, count: int, size: int) -> list[Path]:
    """Upscale, tint and add grain to Fashion-MNIST images; save as quality-90 JPEGs."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = directory / f"synthetic-{i:06d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        grey = Image.fromarray(images[i % len(images)]).resize(
            (size, size), Image.Resampling.BICUBIC
        )
        tint = rng.uniform(0.4, 1.0, size=3)
        background = rng.uniform(0, 80, size=3)
        pixels = np.asarray(grey, dtype=np.float32)[..., None] / 255.0
        rgb = background + pixels * (255.0 * tint - background)
        rgb += rng.normal(0, 6, size=rgb.shape)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)
    return paths


def random_head(backbone: Backbone) -> TrainedHead:
    """A seeded random linear head: scoring cost does not depend on what it learned."""
    generator = torch.Generator().manual_seed(0)
    state = {
        "weight": 0.01 * torch.randn(N_CLASSES, backbone.embedding_dim, generator=generator),
        "bias": torch.zeros(N_CLASSES),
    }
    names = [f"class-{i}" for i in range(N_CLASSES)]
    return TrainedHead(
        state=state,
        class_names=names,
        backbone_id=backbone.backbone_id,
        embedding_dim=backbone.embedding_dim,
        version=head_version(backbone.backbone_id, names, state),
        n_train=0,
        metrics={},
        created_at="",
    )


def naive_embed_one(path: Path, backbone: Backbone, device: torch.device) -> torch.Tensor:
    """One image, the straightforward way: decode, resize, normalise, batch of 1, fp32."""
    size = backbone.image_size
    image = load_rgb(path).resize((size, size), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(backbone.mean).view(3, 1, 1)
    std = torch.tensor(backbone.std).view(3, 1, 1)
    x = ((x - mean) / std).unsqueeze(0).contiguous().to(device)
    return backbone.module(x)[0].cpu()


def run_naive(paths: Sequence[Path], backbone: Backbone, head: TrainedHead, device: torch.device):
    """Score ``paths`` one at a time; returns (seconds, embeddings (n, D))."""
    backbone.module.to(device)
    with torch.inference_mode():
        for path in paths[:3]:  # warm-up
            naive_embed_one(path, backbone, device)
        start = time.perf_counter()
        rows = []
        for path in paths:
            embedding = naive_embed_one(path, backbone, device)
            entropy(head.predict_proba(embedding.numpy()[None]))
            rows.append(embedding.numpy())
        seconds = time.perf_counter() - start
    return seconds, np.stack(rows)


def run_batched(
    paths: Sequence[Path],
    backbone: Backbone,
    head: TrainedHead,
    device: torch.device,
    args: argparse.Namespace,
) -> tuple[float, EmbeddingResult]:
    """Score ``paths`` with embed_images + predict_proba + entropy; returns (seconds, result)."""
    options = {
        "device": device,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
    }
    embed_images(paths[: args.batch_size], backbone, **options)  # warm-up, CUDA context
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = embed_images(paths, backbone, **options)
    scores = entropy(head.predict_proba(result.embeddings))
    seconds = time.perf_counter() - start
    assert len(scores) == len(paths) - len(result.failures)
    return seconds, result


def run_decode_only(
    paths: Sequence[Path], backbone: Backbone, device: torch.device, args: argparse.Namespace
) -> float:
    """Seconds to decode, resize and batch ``paths`` as embed_images does, without a model."""
    dataset = ImagePoolDataset(paths, image_size=backbone.image_size, max_pixels=DEFAULT_MAX_PIXELS)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=stack_decoded,
        pin_memory=device.type == "cuda",
    )
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def stack_decoded(items: list[tuple[int, object]]) -> torch.Tensor:
    """Stack the decoded images of a batch, leaving out the failures."""
    tensors = [item for _, item in items if isinstance(item, torch.Tensor)]
    return torch.stack(tensors) if tensors else torch.empty(0)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    device = resolve_device(args.device)
    if args.num_workers is None:
        args.num_workers = 0 if device.type == "cpu" else min(16, os.cpu_count() or 1)
    paths, source = collect_images(args, workdir)
    spec = BackboneSpec(architecture=args.architecture, image_size=args.image_size)
    batched_backbone, naive_backbone = load_backbone(spec), load_backbone(spec)
    head = random_head(batched_backbone)
    naive_paths = paths[: args.naive_n if args.naive_n is not None else min(len(paths), 128)]
    naive_seconds, naive_rows = run_naive(naive_paths, naive_backbone, head, device)
    batched_seconds, result = run_batched(paths, batched_backbone, head, device, args)
    decode_seconds = run_decode_only(paths, batched_backbone, device, args)
    naive_rate = len(naive_paths) / naive_seconds
    batched_rate = len(result.indices) / batched_seconds
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "architecture": batched_backbone.backbone_id,
        "source": source,
        "n_images": len(paths),
        "n_naive": len(naive_paths),
        "failures": len(result.failures),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "naive_images_per_second": round(naive_rate, 1),
        "batched_images_per_second": round(batched_rate, 1),
        "decode_only_images_per_second": round(len(paths) / decode_seconds, 1),
        "speedup": round(batched_rate / naive_rate, 2),
        "min_cosine_naive_vs_batched": round(min_cosine(naive_rows, result, len(naive_paths)), 5),
    }


def min_cosine(naive_rows: np.ndarray, result: EmbeddingResult, n: int) -> float:
    """Smallest cosine similarity between the two pipelines' embeddings of the same image."""
    position = {index: row for row, index in enumerate(result.indices)}
    pairs = [(naive_rows[i], result.embeddings[position[i]]) for i in range(n) if i in position]
    a = np.stack([p[0] for p in pairs]).astype(np.float64)
    b = np.stack([p[1] for p in pairs]).astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cosine.min())


def print_table(figures: dict[str, object]) -> None:
    print(f"device     {figures['device']} ({figures['device_name']}), torch {figures['torch']}")
    print(
        f"model      {figures['architecture']}, batch {figures['batch_size']}, "
        f"workers {figures['num_workers']}"
    )
    print(f"images     {figures['n_images']} ({figures['source']}), {figures['failures']} failed")
    print()
    print(f"{'pipeline':<52}{'images/s':>10}")
    print("-" * 62)
    print(
        f"{'naive: per image, PIL, batch 1, fp32 (' + str(figures['n_naive']) + ' images)':<52}"
        f"{figures['naive_images_per_second']:>10.1f}"
    )
    print(
        f"{'batched: embed_images + predict_proba + entropy':<52}"
        f"{figures['batched_images_per_second']:>10.1f}"
    )
    print(
        f"{'decode + resize only (same DataLoader, no model)':<52}"
        f"{figures['decode_only_images_per_second']:>10.1f}"
    )
    print("-" * 62)
    print(f"{'speedup (batched / naive)':<52}{figures['speedup']:>9.2f}x")
    print(
        f"{'min cosine similarity, naive vs batched':<52}"
        f"{figures['min_cosine_naive_vs_batched']:>10.5f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as temporary:
        workdir = args.workdir if args.workdir is not None else Path(temporary)
        figures = benchmark(args, workdir)
    print_table(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
