"""Decoding image batches on the compute device, overlapped with the model.

CPU threads read the files and their headers. Upright RGB or greyscale JPEGs, and JPEGs with
an EXIF orientation, are decoded together on the device (``torchvision.io.decode_jpeg`` with
a list of tensors, nvJPEG on CUDA), turned upright and resized there. Everything else (PNG,
GIF, WebP, CMYK JPEG) and any JPEG the device decoder rejects is decoded by Pillow in the
reader threads, exactly as the CPU path does. torchvision's ``decode_png`` has no device
argument, so PNGs always take the Pillow path.

A background thread prepares batch ``i + 1`` on its own CUDA stream while the caller runs the
model on batch ``i``. With ``device="cpu"`` the same code runs on the CPU, which is how it is
tested without a GPU.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from models.batches import ImageFailure, PixelBatch
from models.errors import ImageDecodeError
from models.images import ImageHeader, jpeg_header, load_rgb_bytes, read_header

DEVICE_MODES = ("RGB", "L")  # JPEG colour models the device decoder turns into RGB


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG's bytes (``data``: (n_bytes,) uint8) left for the device decoder."""

    index: int
    path: str
    data: torch.Tensor
    header: ImageHeader


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded on the CPU: ``pixels`` is (size, size, 3) uint8."""

    index: int
    pixels: torch.Tensor


Item = EncodedJpeg | DecodedImage | ImageFailure


@dataclass(frozen=True)
class DecodeOptions:
    """Where and how images are decoded; sizes in pixels, limits as in ``models.images``."""

    device: torch.device
    image_size: int
    max_pixels: int
    max_bytes: int


def read_item(index: int, path: str, options: DecodeOptions) -> Item:
    """Read one file: a JPEG for the device, else the image decoded here, or the failure."""
    try:
        with open(path, "rb") as handle:
            data = bytearray(handle.read(options.max_bytes + 1))
    except OSError as err:
        return ImageFailure(index, path, "image_unreadable", f"cannot open file: {err}")
    try:
        header = jpeg_header(data) or read_header(
            bytes(data), path, max_pixels=options.max_pixels, max_bytes=options.max_bytes
        )
        if header.width * header.height > options.max_pixels or len(data) > options.max_bytes:
            return decode_on_cpu(index, path, bytes(data), options)  # which says why
        if header.format == "JPEG" and header.mode in DEVICE_MODES:
            return EncodedJpeg(index, path, torch.frombuffer(data, dtype=torch.uint8), header)
        return decode_on_cpu(index, path, bytes(data), options)
    except ImageDecodeError as err:
        return ImageFailure(index, path, err.code, err.reason)


def decode_on_cpu(index: int, path: str, data: bytes, options: DecodeOptions) -> DecodedImage:
    """Pillow decode, upright RGB, bilinear resize: the CPU path's pixels for one image."""
    size = options.image_size
    image = load_rgb_bytes(
        data, path, max_pixels=options.max_pixels, max_bytes=options.max_bytes, draft_size=size
    )
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return DecodedImage(index, torch.from_numpy(np.array(image, dtype=np.uint8)))


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn ``image: (C, H, W)`` upright as EXIF ``orientation`` (1-8) says, as Pillow does."""
    if orientation in (5, 7):  # a transpose, then what 1 or 3 would do
        image = image.transpose(1, 2)
    if orientation in (2, 4, 3, 7):
        dims = {2: (2,), 4: (1,), 3: (1, 2), 7: (1, 2)}[orientation]
        return image.flip(dims)
    if orientation in (6, 8):
        return torch.rot90(image, -1 if orientation == 6 else 1, dims=(1, 2))
    return image


def resize_square(images: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """Resize ``(3, h, w)`` uint8 images to ``(n, 3, size, size)`` uint8.

    Bilinear with antialiasing when shrinking, like Pillow's resize; images of the same shape
    are resized in one call.
    """
    if not images:
        raise ValueError("expected at least one image to resize")
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8, device=images[0].device)
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(position)
    for shape, positions in groups.items():
        stack = torch.stack([images[p] for p in positions])
        if shape[1:] != (size, size):
            resized = F.interpolate(
                stack.float(), size=(size, size), mode="bilinear", antialias=True
            )
            stack = resized.round_().clamp_(0, 255).to(torch.uint8)
        out[positions] = stack
    return out


def decode_items(items: Sequence[Item], options: DecodeOptions) -> PixelBatch:
    """Decode what the reader threads left, resize it and stack the batch on the device."""
    jpegs = [item for item in items if isinstance(item, EncodedJpeg)]
    decoded, rejected = _decode_jpegs(jpegs, options.device)
    pixels: dict[int, torch.Tensor] = {}
    failures = [item for item in items if isinstance(item, ImageFailure)]
    for item in rejected:  # damaged or exotic JPEGs: Pillow says which, and why
        try:
            done = decode_on_cpu(item.index, item.path, item.data.numpy().tobytes(), options)
        except ImageDecodeError as err:
            failures.append(ImageFailure(item.index, item.path, err.code, err.reason))
        else:
            pixels[item.index] = _upload(done.pixels, options.device)
    for item in items:
        if isinstance(item, DecodedImage):
            pixels[item.index] = _upload(item.pixels, options.device)
    if decoded:
        indices = sorted(decoded)
        orientation = {jpeg.index: jpeg.header.orientation for jpeg in jpegs}
        upright = [orient(decoded[i], orientation[i]) for i in indices]
        pixels.update(zip(indices, resize_square(upright, options.image_size), strict=True))
    order = sorted(pixels)
    stacked = torch.stack([pixels[i] for i in order]) if order else None
    return PixelBatch(order, stacked, sorted(failures, key=lambda failure: failure.index))


def _decode_jpegs(
    jpegs: Sequence[EncodedJpeg], device: torch.device
) -> tuple[dict[int, torch.Tensor], list[EncodedJpeg]]:
    """Decode ``jpegs`` in one batch; on an error, one by one to find the bad ones.

    Returns the ``(3, h, w)`` uint8 images by input index and the JPEGs that failed.
    """
    if not jpegs:
        return {}, []
    try:
        images = decode_jpeg([j.data for j in jpegs], mode=ImageReadMode.RGB, device=device)
        return {j.index: image for j, image in zip(jpegs, images, strict=True)}, []
    except RuntimeError:
        decoded, rejected = {}, []
        for jpeg in jpegs:
            try:
                decoded[jpeg.index] = decode_jpeg(jpeg.data, mode=ImageReadMode.RGB, device=device)
            except RuntimeError:
                rejected.append(jpeg)
        return decoded, rejected


def _upload(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` CPU uint8 to ``(3, H, W)`` on ``device``."""
    chw = pixels.permute(2, 0, 1)
    if device.type == "cuda":
        return chw.pin_memory().to(device, non_blocking=True)
    return chw


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

    Files are read ``prefetch + 1`` batches ahead by ``read_threads`` threads; a background
    thread decodes up to ``prefetch`` batches ahead (on its own CUDA stream), so call
    ``batch.wait()`` before using a batch's pixels on the current stream.
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
    try:
        with ThreadPoolExecutor(read_threads, thread_name_prefix="image-read") as pool:
            for futures in _read_ahead(pool, names, options, batch_size, prefetch + 1):
                items = [future.result() for future in futures]
                with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
                    batch = decode_items(items, options)
                    if stream is not None:
                        batch.ready = torch.cuda.Event()
                        batch.ready.record(stream)
                if not _put(out, batch, stop):
                    return
        _put(out, _DONE, stop)
    except BaseException as err:  # handed to the consumer, which raises it
        _put(out, err, stop)


def _read_ahead(
    pool: ThreadPoolExecutor, names: list[str], options: DecodeOptions, batch_size: int, ahead: int
) -> Iterator[list[Future[Item]]]:
    """Futures of each batch's reads, with ``ahead`` batches submitted before they are due."""
    starts = iter(range(0, len(names), batch_size))
    pending: deque[list[Future[Item]]] = deque()

    def submit() -> None:
        start = next(starts, None)
        if start is not None:
            stop = min(start + batch_size, len(names))
            pending.append(
                [pool.submit(read_item, i, names[i], options) for i in range(start, stop)]
            )

    for _ in range(ahead):
        submit()
    while pending:
        futures = pending.popleft()
        submit()
        yield futures


def _put(out: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone; returns whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
