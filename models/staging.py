"""Reading a batch of image files end to end into one host buffer (page-locked for CUDA).

One buffer per batch instead of one bytes object and one tensor per file: the device decoder
gets views into it, a copy to the GPU starts from page-locked memory, and the marker scan of
``models.jpeg_structure`` runs over the whole batch at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StagedFiles:
    """Files laid end to end in ``buffer: (n_bytes + 1,)`` uint8 (a zero byte closes it).

    ``bounds[i]`` is ``(start, stop)`` of file ``i`` in the buffer, or None when it could not
    be read in full here (missing, empty, over the byte limit, unreadable, changed while
    read): the CPU path then reads it and says why.
    """

    buffer: torch.Tensor
    bounds: list[tuple[int, int] | None]

    def array(self) -> np.ndarray:
        """The buffer as ``(n_bytes + 1,)`` uint8 numpy, sharing its memory."""
        return self.buffer.numpy()


def stage_files(paths: Sequence[str], *, max_bytes: int, pin: bool) -> StagedFiles:
    """Read every file of ``paths`` into one buffer, page-locked when ``pin``."""
    sizes = [_size(path, max_bytes) for path in paths]
    total = sum(size for size in sizes if size > 0)
    buffer = torch.empty(total + 1, dtype=torch.uint8, pin_memory=pin)
    array = buffer.numpy()
    array[total] = 0
    view = memoryview(array)
    bounds: list[tuple[int, int] | None] = []
    offset = 0
    for path, size in zip(paths, sizes, strict=True):
        if size > 0 and _read_into(path, view[offset : offset + size]):
            bounds.append((offset, offset + size))
            offset += size
        else:
            bounds.append(None)
    return StagedFiles(buffer, bounds)


def _size(path: str, max_bytes: int) -> int:
    """The file's size when it is worth reading here, else -1."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return -1
    return size if 0 < size <= max_bytes else -1


def _read_into(path: str, target: memoryview) -> bool:
    """Fill ``target`` with the file's bytes; False when it cannot be read or has changed."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        return os.readv(descriptor, [target]) == len(target)
    except OSError:
        return False
    finally:
        os.close(descriptor)
