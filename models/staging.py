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

    ``contents[i]`` is file ``i``'s bytes and ``bounds[i]`` its ``(start, stop)`` in the
    buffer, or both None when it could not be read in full here (missing, empty, over the
    byte limit, unreadable): the CPU path then reads it and says why.
    """

    buffer: torch.Tensor
    bounds: list[tuple[int, int] | None]
    contents: list[bytes | None]

    def array(self) -> np.ndarray:
        """The buffer as ``(n_bytes + 1,)`` uint8 numpy, sharing its memory."""
        return self.buffer.numpy()


def stage_files(paths: Sequence[str], *, max_bytes: int, pin: bool) -> StagedFiles:
    """Read every file of ``paths`` and copy them into one buffer, page-locked when ``pin``."""
    contents = [_read(path, max_bytes) for path in paths]
    total = sum(len(data) for data in contents if data is not None)
    buffer = torch.empty(total + 1, dtype=torch.uint8, pin_memory=pin)
    array = buffer.numpy()
    array[total] = 0
    view = memoryview(array)
    bounds: list[tuple[int, int] | None] = []
    offset = 0
    for data in contents:
        if data is None:
            bounds.append(None)
            continue
        view[offset : offset + len(data)] = data
        bounds.append((offset, offset + len(data)))
        offset += len(data)
    return StagedFiles(buffer, bounds, contents)


def _read(path: str, max_bytes: int) -> bytes | None:
    """The file's bytes when it can be read whole and is neither empty nor too big."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        size = os.fstat(descriptor).st_size
        if not 0 < size <= max_bytes:
            return None
        data = os.read(descriptor, size)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return data if len(data) == size else None
