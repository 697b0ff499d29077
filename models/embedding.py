"""Batched embedding of an image pool with a frozen backbone.

On the CPU, decoding and resizing run in a :class:`torch.utils.data.DataLoader` (in a worker
process when the machine has cores to spare) while the model runs on the fastest CPU path
(ONNX Runtime fp32 when installed, else bf16 autocast where the CPU computes bf16 natively,
else fp32; see ``models.inference``). On CUDA, JPEGs are decoded in batches on the GPU and
the next batch is decoded while the model runs (``models.gpu_decode``). A file that cannot
be decoded becomes an :class:`ImageFailure` record; it never stops the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from models.backbone import Backbone
from models.batches import ImageFailure, PixelBatch
from models.device import resolve_device
from models.device_batches import iter_device_batches
from models.errors import ImageDecodeError
from models.gpu_decode import DecodeOptions
from models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_rgb
from models.inference import (
    InferencePlan,
    Precision,
    forward_uint8,
    normaliser,
    plan_inference,
    prepare_module,
)

__all__ = ["EmbeddingResult", "ImageFailure", "ImagePoolDataset", "embed_images"]
# Below this many images a decode worker costs more to start than it saves.
_MIN_IMAGES_FOR_WORKER = 128
# Default batch sizes: the CPU model runs best on small batches; nvJPEG and the GPU model
# need large ones to hide their latency.
_CPU_BATCH, _DEVICE_BATCH = 64, 256


@dataclass
class EmbeddingResult:
    """Embeddings of the images that decoded, in input order.

    ``embeddings``: ``(n_ok, embedding_dim)`` float32; ``indices[i]`` is the position in
    the input list of row ``i``. ``images_per_second`` counts embedded images over the
    whole run (decoding, transfer and model). ``precision`` is ``"fp32"``, ``"bf16"`` or
    ``"int8"``, ``decoder`` is ``"cpu"`` or ``"device"`` and ``runtime`` is ``"torch"`` or
    ``"onnxruntime"``: how the run went.
    """

    embeddings: np.ndarray
    indices: list[int]
    failures: list[ImageFailure]
    seconds: float
    images_per_second: float
    precision: str = "fp32"
    decoder: str = "cpu"
    runtime: str = "torch"


class ImagePoolDataset(Dataset):
    """Decodes ``paths[i]`` into an ``(image_size, image_size, 3)`` uint8 tensor.

    Images are converted to RGB and resized (bilinear, antialiased when shrinking) without
    keeping the aspect ratio, so nothing is cropped away. A failure is returned, not raised.
    """

    def __init__(self, paths: Sequence[str | Path], *, image_size: int, max_pixels: int) -> None:
        self.paths = [str(path) for path in paths]
        self.image_size = image_size
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | ImageFailure]:
        path = self.paths[index]
        size = self.image_size
        try:
            image = load_rgb(path, max_pixels=self.max_pixels, draft_size=size)
        except ImageDecodeError as err:
            return index, ImageFailure(index, path, err.code, err.reason)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return index, torch.from_numpy(np.array(image, dtype=np.uint8))


def collate_pixels(items: list[tuple[int, torch.Tensor | ImageFailure]]) -> PixelBatch:
    """Stack decoded ``(H, W, 3)`` images into a batch viewed as ``(n, 3, H, W)``.

    The view is channels-last in memory, the layout the model runs in.
    """
    good = [(index, item) for index, item in items if isinstance(item, torch.Tensor)]
    failures = [item for _, item in items if isinstance(item, ImageFailure)]
    pixels = torch.stack([tensor for _, tensor in good]).permute(0, 3, 1, 2) if good else None
    return PixelBatch([index for index, _ in good], pixels, failures)


def embed_images(
    paths: Sequence[str | Path],
    backbone: Backbone,
    *,
    device: torch.device | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    precision: Precision = "auto",
    device_decode: bool | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddingResult:
    """Embed every image in ``paths`` with ``backbone``.

    ``device`` defaults to the first GPU when there is one, else the CPU; the backbone's
    module is moved there (in place, channels-last). ``precision`` is ``"auto"`` (on the CPU
    ONNX Runtime fp32 when installed; bf16 autocast on CUDA and on CPUs with native bf16;
    else fp32), ``"fp32"`` (eager), ``"bf16"`` or ``"int8"`` (CPU, opt-in; see
    ``models.inference``).
    ``device_decode`` (default: on CUDA) decodes JPEGs on the device; ``num_workers`` are
    the CPU decoding processes, or on the device path the file-reading threads (default:
    one process when the CPU has a core to spare and the pool is large enough; on CUDA one
    thread per core up to 16). ``progress(done, total)`` is called after each batch.
    ``batch_size`` defaults to 256 when decoding on the device, else 64. Undecodable files
    are listed in the result's ``failures``.
    """
    if (batch_size is not None and batch_size < 1) or (num_workers is not None and num_workers < 0):
        raise ValueError(
            f"expected batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
        )
    device = device if device is not None else resolve_device("auto")
    plan = plan_inference(device, precision)
    on_device = device.type == "cuda" if device_decode is None else device_decode
    if batch_size is None:
        batch_size = _DEVICE_BATCH if on_device else _CPU_BATCH
    start = time.perf_counter()
    if on_device:
        threads = num_workers or min(16, os.cpu_count() or 1)
        options = DecodeOptions(device, backbone.image_size, max_pixels, DEFAULT_MAX_BYTES)
        batches = iter_device_batches(paths, options, batch_size=batch_size, read_threads=threads)
    else:
        workers = num_workers if num_workers is not None else _default_workers(len(paths), plan)
        batches = _cpu_batches(paths, backbone, device, batch_size, workers, max_pixels)
    embeddings, indices, failures, plan = _run(batches, len(paths), backbone, plan, progress)
    seconds = time.perf_counter() - start
    rate = len(indices) / seconds if seconds > 0 else 0.0
    decoder = "device" if on_device else "cpu"
    return EmbeddingResult(
        embeddings, indices, failures, seconds, rate, plan.precision, decoder, plan.runtime
    )


def _default_workers(n_images: int, plan: InferencePlan) -> int:
    """One decoding process beside an eager model when a core is free for it, else none.

    ONNX Runtime keeps every core busy itself: a decoding process only contends with it
    (measured: 2-core EPYC, 256 images, 164 images/s decoding inline against 130 beside it).
    """
    if plan.runtime == "onnxruntime":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) >= 2 and n_images >= _MIN_IMAGES_FOR_WORKER else 0


def _cpu_batches(
    paths: Sequence[str | Path],
    backbone: Backbone,
    device: torch.device,
    batch_size: int,
    num_workers: int,
    max_pixels: int,
) -> DataLoader:
    dataset = ImagePoolDataset(paths, image_size=backbone.image_size, max_pixels=max_pixels)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_pixels,
        pin_memory=device.type == "cuda",
    )


def _run(
    batches: Iterable[PixelBatch],
    total: int,
    backbone: Backbone,
    plan: InferencePlan,
    progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, list[int], list[ImageFailure], InferencePlan]:
    module, plan = prepare_module(backbone, plan)
    norm = normaliser(backbone, plan.device)
    outputs: list[torch.Tensor] = []
    indices: list[int] = []
    failures: list[ImageFailure] = []
    done = 0
    with torch.inference_mode():
        for batch in batches:
            if batch.pixels is not None:
                batch.wait()
                # Outputs stay on the device until the end: no synchronisation per batch.
                outputs.append(forward_uint8(module, batch.pixels, norm, plan))
                indices.extend(batch.indices)
            failures.extend(batch.failures)
            done += batch.size
            if progress is not None:
                progress(done, total)
        embeddings = _gather(outputs, backbone.embedding_dim)
    return embeddings, indices, failures, plan


def _gather(outputs: list[torch.Tensor], embedding_dim: int) -> np.ndarray:
    if not outputs:
        return np.zeros((0, embedding_dim), dtype=np.float32)
    return torch.cat(outputs).cpu().numpy().astype(np.float32, copy=False)
