"""Decoded image batches as the embedding loop consumes them, and per-image failures."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class ImageFailure:
    """An input image that could not be embedded; ``code`` as in ImageDecodeError."""

    index: int
    path: str
    code: str
    reason: str


@dataclass
class PixelBatch:
    """Decoded images of one batch, in input order.

    ``pixels``: ``(n, 3, H, W)`` uint8 (any memory layout, any device), or None when every
    image failed; ``indices[i]`` is the input position of image ``i``. ``ready`` is a CUDA
    event recorded after the pixels were written on another stream (None: ready now).
    """

    indices: list[int]
    pixels: torch.Tensor | None
    failures: list[ImageFailure] = field(default_factory=list)
    ready: torch.cuda.Event | None = None

    @property
    def size(self) -> int:
        return len(self.indices) + len(self.failures)

    def pin_memory(self) -> PixelBatch:
        """Page-lock the pixels for an asynchronous copy (the DataLoader calls this)."""
        if self.pixels is not None:
            self.pixels = self.pixels.pin_memory()
        return self

    def wait(self) -> None:
        """Make the current CUDA stream wait until the pixels are written."""
        if self.ready is not None and self.pixels is not None:
            stream = torch.cuda.current_stream(self.pixels.device)
            stream.wait_event(self.ready)
            self.pixels.record_stream(stream)  # keep the allocator from reusing it too early
