"""Decoded batches prepared ahead of the model: staging threads, then the device decode.

Reader threads stage batch ``i + 2`` (``models.gpu_decode.read_batch``: read, check, and
Pillow's share of the batch) while a background thread decodes batch ``i + 1`` on its own CUDA
stream (``decode_items``) and the caller runs the model on batch ``i``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from models.batches import PixelBatch
from models.gpu_decode import DecodeOptions, Item, decode_items, read_batch

_DONE = object()


def iter_device_batches(
    paths: Sequence[str | Path],
    options: DecodeOptions,
    *,
    batch_size: int,
    read_threads: int,
    prefetch: int = 2,
) -> Iterator[PixelBatch]:
    """Batches of ``paths`` decoded on ``options.device``, in input order.

    Batches are staged ``prefetch + 1`` ahead (Pillow's share of them by ``read_threads``
    threads); a background thread decodes up to ``prefetch`` batches ahead (on its own CUDA
    stream), so call ``batch.wait()`` before using a batch's pixels on the current stream.
    """
    if batch_size < 1 or read_threads < 1 or prefetch < 1:
        raise ValueError(
            f"expected batch_size, read_threads and prefetch >= 1, "
            f"got {batch_size}, {read_threads}, {prefetch}"
        )
    names = [str(path) for path in paths]
    out: queue.Queue[object] = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    args = (names, options, batch_size, read_threads, prefetch, out, stop)
    producer = threading.Thread(target=_produce, args=args, name="device-decode", daemon=True)
    producer.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a producer waiting to put
                out.get_nowait()
        producer.join()


def _produce(
    names: list[str],
    options: DecodeOptions,
    batch_size: int,
    read_threads: int,
    prefetch: int,
    out: queue.Queue[object],
    stop: threading.Event,
) -> None:
    cuda = options.device.type == "cuda"
    stream = torch.cuda.Stream(options.device) if cuda else None
    # Staged buffers stay alive until the device has finished with them (nvJPEG may copy
    # from page-locked memory asynchronously).
    in_use: deque[tuple[torch.cuda.Event, list[Item]]] = deque()
    try:
        with (
            ThreadPoolExecutor(prefetch + 1, thread_name_prefix="image-stage") as stagers,
            ThreadPoolExecutor(read_threads, thread_name_prefix="image-read") as readers,
        ):
            for future in _stage_ahead(stagers, readers, names, options, batch_size, prefetch + 1):
                items = future.result()
                with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
                    batch = decode_items(items, options)
                    if stream is not None:
                        batch.ready = torch.cuda.Event()
                        batch.ready.record(stream)
                        in_use.append((batch.ready, items))
                while len(in_use) > prefetch + 1:
                    in_use.popleft()[0].synchronize()
                if not _put(out, batch, stop):
                    return
        _put(out, _DONE, stop)
    except BaseException as err:  # handed to the consumer, which raises it
        _put(out, err, stop)


def _stage_ahead(
    stagers: ThreadPoolExecutor,
    readers: ThreadPoolExecutor,
    names: list[str],
    options: DecodeOptions,
    batch_size: int,
    ahead: int,
) -> Iterator[Future[list[Item]]]:
    """Each batch's staging future, with ``ahead`` batches submitted before they are due."""
    starts = iter(range(0, len(names), batch_size))
    pending: deque[Future[list[Item]]] = deque()

    def submit() -> None:
        start = next(starts, None)
        if start is not None:
            batch = names[start : start + batch_size]
            pending.append(stagers.submit(read_batch, start, batch, options, cpu_pool=readers))

    for _ in range(ahead):
        submit()
    while pending:
        future = pending.popleft()
        submit()
        yield future


def _put(out: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone; returns whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
