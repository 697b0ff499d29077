"""Batched embedding of an image pool with a frozen backbone.

Decoding and resizing run in a :class:`torch.utils.data.DataLoader` (optionally in worker
processes) while the model runs on the device. A file that cannot be decoded becomes an
:class:`ImageFailure` record; it never stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from models.backbone import Backbone
from models.device import resolve_device
from models.errors import ImageDecodeError
from models.images import DEFAULT_MAX_PIXELS, load_rgb

# On a CPU the model runs on slices of this many images: the activations of larger batches
# outgrow the caches and the allocator's reuse limit, and throughput drops (measured at
# 112-224 px on a few cores).
_CPU_SLICE = 4


@dataclass(frozen=True)
class ImageFailure:
    """An input image that could not be embedded; ``code`` as in ImageDecodeError."""

    index: int
    path: str
    code: str
    reason: str


@dataclass
class EmbeddingResult:
    """Embeddings of the images that decoded, in input order.

    ``embeddings``: ``(n_ok, embedding_dim)`` float32; ``indices[i]`` is the position in
    the input list of row ``i``. ``images_per_second`` counts embedded images over the
    whole run (decoding, transfer and model).
    """

    embeddings: np.ndarray
    indices: list[int]
    failures: list[ImageFailure]
    seconds: float
    images_per_second: float


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


@dataclass
class _Batch:
    """A collated batch: ``pixels`` is ``(n, H, W, 3)`` uint8, or None if all failed."""

    indices: list[int]
    pixels: torch.Tensor | None
    failures: list[ImageFailure] = field(default_factory=list)

    def pin_memory(self) -> _Batch:
        # Called by the DataLoader when pin_memory=True.
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        return self

    @property
    def size(self) -> int:
        return len(self.indices) + len(self.failures)


def _collate(items: list[tuple[int, torch.Tensor | ImageFailure]]) -> _Batch:
    good = [(index, item) for index, item in items if isinstance(item, torch.Tensor)]
    failures = [item for _, item in items if isinstance(item, ImageFailure)]
    pixels = torch.stack([tensor for _, tensor in good]) if good else None
    return _Batch(indices=[index for index, _ in good], pixels=pixels, failures=failures)


def embed_images(
    paths: Sequence[str | Path],
    backbone: Backbone,
    *,
    device: torch.device | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddingResult:
    """Embed every image in ``paths`` with ``backbone``.

    ``device`` defaults to the first GPU when there is one, else the CPU; the backbone's
    module is moved there (in place). On CUDA, batches are pinned, copied asynchronously,
    laid out channels-last and run under bfloat16 autocast. ``progress(done, total)`` is
    called after each batch. Returns an :class:`EmbeddingResult`; undecodable files are
    listed in its ``failures``.
    """
    if batch_size < 1 or num_workers < 0:
        raise ValueError(
            f"expected batch_size >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
        )
    device = device if device is not None else resolve_device("auto")
    start = time.perf_counter()
    dataset = ImagePoolDataset(paths, image_size=backbone.image_size, max_pixels=max_pixels)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    embeddings, indices, failures = _run(loader, backbone, device, progress)
    seconds = time.perf_counter() - start
    rate = len(indices) / seconds if seconds > 0 else 0.0
    return EmbeddingResult(embeddings, indices, failures, seconds, rate)


def _run(
    loader: DataLoader,
    backbone: Backbone,
    device: torch.device,
    progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, list[int], list[ImageFailure]]:
    module = backbone.module.to(device, memory_format=torch.channels_last)
    scale, shift = _normaliser(backbone, device)
    outputs: list[torch.Tensor] = []
    indices: list[int] = []
    failures: list[ImageFailure] = []
    total = len(loader.dataset)  # type: ignore[arg-type]
    done = 0
    with torch.inference_mode():
        for batch in loader:
            if batch.pixels is not None:
                # Outputs stay on the device until the end: no synchronisation per batch.
                outputs.append(_forward(module, batch.pixels, scale, shift, device))
                indices.extend(batch.indices)
            failures.extend(batch.failures)
            done += batch.size
            if progress is not None:
                progress(done, total)
        embeddings = _gather(outputs, backbone.embedding_dim)
    return embeddings, indices, failures


def _normaliser(backbone: Backbone, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` of shape (1, 3, 1, 1) so that ``x_uint8 * scale + shift`` is the input."""
    mean = torch.tensor(backbone.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (-mean / std).to(device)


def _forward(
    module: nn.Module,
    pixels: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """Run ``module`` on ``pixels`` (n, H, W, 3) uint8; returns (n, D) float32 on ``device``."""
    parts = pixels.split(_CPU_SLICE) if device.type == "cpu" else (pixels,)
    outputs = [_forward_part(module, part, scale, shift, device) for part in parts]
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def _forward_part(
    module: nn.Module,
    pixels: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    # NHWC memory permuted to NCHW is exactly the channels-last layout.
    x = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    x = torch.addcmul(shift, x, scale)
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return module(x).float()
    return module(x).float()


def _gather(outputs: list[torch.Tensor], embedding_dim: int) -> np.ndarray:
    if not outputs:
        return np.zeros((0, embedding_dim), dtype=np.float32)
    return torch.cat(outputs).cpu().numpy().astype(np.float32, copy=False)
