"""The host side of the GPU path on one CPU core: the rate that keeps the GPU fed.

Everything ``models.gpu_decode`` does on the CPU for a batch before the device decodes it:
read the files, check each JPEG's structure and header, stage the batch in one buffer
(page-locked when a GPU is present) and make the views the decoder gets; no device decode,
no model. One thread, ``torch.set_num_threads(1)``.

The figure is images per second of that thread's CPU time (``time.thread_time``), the best
of ``rounds``: on a shared machine the wall clock also counts the time other processes held
the core. The wall-clock rate is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch

from models.gpu_decode import DecodeOptions, EncodedJpeg, read_batch
from models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


def host_feed(paths: Sequence[Path], *, batch_size: int, rounds: int, image_size: int) -> dict:
    """``host_feed_images_per_s`` (CPU time) and the wall-clock rate, best of ``rounds``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    options = DecodeOptions(device, image_size, DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)
    names = [str(path) for path in paths]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _feed(names, options, batch_size)  # page cache warm, tables parsed once
        cpu, wall = [], []
        for _ in range(rounds):
            started_cpu, started_wall = time.thread_time(), time.perf_counter()
            _feed(names, options, batch_size)
            cpu.append(time.thread_time() - started_cpu)
            wall.append(time.perf_counter() - started_wall)
    finally:
        torch.set_num_threads(threads)
    return {
        "host_feed_images_per_s": round(len(names) / min(cpu), 1),
        "host_feed_wall_images_per_s": round(len(names) / min(wall), 1),
        "host_feed_batch_size": batch_size,
        "host_feed_images": len(names),
        "host_feed_pinned": device.type == "cuda",
    }


def _feed(names: list[str], options: DecodeOptions, batch_size: int) -> None:
    """Stage every batch as the device path does; every file must be a sound JPEG."""
    for start in range(0, len(names), batch_size):
        items = read_batch(start, names[start : start + batch_size], options)
        decoder_input = [item.data for item in items if isinstance(item, EncodedJpeg)]
        if len(decoder_input) != len(items):
            raise RuntimeError("the host-feed set must hold only sound JPEGs")
