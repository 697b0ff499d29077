"""Decoding image batches on the compute device, overlapped with the model.

A batch's files are read end to end into one host buffer (page-locked on CUDA;
``models.staging``) and every JPEG's marker structure is checked (``models.jpeg_structure``).
Well-formed baseline or progressive JPEGs in RGB or grey, with or without an EXIF
orientation, go to the device decoder in one call (``torchvision.io.decode_jpeg`` with a
list of views into the buffer: nvJPEG on CUDA), and are turned upright and resized there,
one resize per image shape. Everything else (PNG, GIF, WebP, CMYK, 12-bit or arithmetic
JPEGs) and every JPEG whose structure is damaged is decoded by Pillow, exactly as the CPU path
does, so it gets the CPU path's pixels, or its failure code and reason; those pixels reach
the device in one page-locked copy per batch. torchvision's ``decode_png`` has no device
argument, so PNGs always take the Pillow path.

``models.device_batches`` runs this ahead of the model, batch by batch. With
``device="cpu"`` the same code runs on the CPU, which is how it is tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from models.batches import ImageFailure, PixelBatch
from models.device_resize import orient, resize_into, resize_square
from models.errors import ImageDecodeError
from models.images import ImageHeader, load_rgb, load_rgb_bytes
from models.jpeg_structure import JpegLayout, UnfitJpeg, check_jpeg, marker_positions
from models.staging import stage_files

__all__ = [
    "DecodeOptions",
    "DecodedImage",
    "EncodedJpeg",
    "decode_items",
    "orient",
    "read_batch",
    "read_item",
    "resize_square",
]


@dataclass(frozen=True, slots=True)
class EncodedJpeg:
    """A checked JPEG left for the device decoder: ``data`` (n_bytes,) uint8, SOI to EOI."""

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

    @property
    def pixel_limit(self) -> int:
        """The most pixels a JPEG may have to go to the device (Pillow's bomb limit too)."""
        bomb = Image.MAX_IMAGE_PIXELS
        return self.max_pixels if bomb is None else min(self.max_pixels, bomb)


def read_batch(
    start: int, paths: Sequence[str], options: DecodeOptions, *, cpu_pool: Executor | None = None
) -> list[Item]:
    """Read ``paths`` (input positions ``start``, ``start + 1``, ...) into one staged buffer.

    Returns one item per path, in order: a checked JPEG for the device, an image Pillow
    decoded (in ``cpu_pool`` when given), or the CPU path's failure.
    """
    staged = stage_files(paths, max_bytes=options.max_bytes, pin=options.device.type == "cuda")
    markers, limit = marker_positions(staged.array()), options.pixel_limit
    items: list[Item | None] = [None] * len(paths)
    cpu: list[tuple[int, int, bytes | None]] = []  # (position, index, bytes read or None)
    device: list[tuple[int, int, JpegLayout]] = []  # (position, offset, layout)
    for position, (data, bounds) in enumerate(zip(staged.contents, staged.bounds, strict=True)):
        if data is None or bounds is None:
            cpu.append((position, start + position, None))
            continue
        try:
            layout = check_jpeg(data, markers, bounds[0])
        except UnfitJpeg:
            cpu.append((position, start + position, data))
            continue
        if layout.header.width * layout.header.height > limit:
            cpu.append((position, start + position, data))
        else:
            device.append((position, bounds[0], layout))
    views = _views(staged.buffer, [(offset, layout.end) for _, offset, layout in device])
    for (position, _, layout), view in zip(device, views, strict=True):
        items[position] = EncodedJpeg(start + position, paths[position], view, layout.header)
    run = cpu_pool.map if cpu_pool is not None else map
    jobs = [(index, paths[position], data, options) for position, index, data in cpu]
    decoded = run(_decode_cpu, *zip(*jobs, strict=True)) if jobs else []
    for (position, _, _), item in zip(cpu, decoded, strict=True):
        items[position] = item
    return items  # type: ignore[return-value]


def _views(buffer: torch.Tensor, spans: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Views ``buffer[offset : offset + length]`` of ordered, disjoint spans, in one split."""
    if not spans:
        return []
    edges = [edge for offset, length in spans for edge in (offset, offset + length)]
    sizes = np.diff([0, *edges, len(buffer)]).tolist()
    return list(buffer.split(sizes)[1::2])


def read_item(index: int, path: str, options: DecodeOptions) -> Item:
    """One file read as :func:`read_batch` reads it."""
    return read_batch(index, [path], options)[0]


def _decode_cpu(
    index: int, path: str, data: bytes | None, options: DecodeOptions
) -> DecodedImage | ImageFailure:
    """The CPU path's verdict: Pillow's pixels, or its failure code and reason."""
    try:
        return decode_on_cpu(index, path, data, options)
    except ImageDecodeError as err:
        return ImageFailure(index, path, err.code, err.reason)


def decode_on_cpu(
    index: int, path: str, data: bytes | None, options: DecodeOptions
) -> DecodedImage:
    """Pillow decode, upright RGB, bilinear resize: the CPU path's pixels for one image.

    ``data`` is the file's bytes, or None to read the file as the CPU path does.
    """
    size = options.image_size
    limits = {"max_pixels": options.max_pixels, "max_bytes": options.max_bytes}
    if data is None:
        image = load_rgb(path, draft_size=size, **limits)
    else:
        image = load_rgb_bytes(data, path, draft_size=size, **limits)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return DecodedImage(index, torch.from_numpy(np.array(image, dtype=np.uint8)))


def decode_items(items: Sequence[Item], options: DecodeOptions) -> PixelBatch:
    """Decode what the readers left, resize it and assemble the batch on the device.

    The batch is ``(n, 3, S, S)`` uint8 in channels-last memory, rows in input order.
    """
    jpegs = [item for item in items if isinstance(item, EncodedJpeg)]
    decoded, rejected = _decode_jpegs(jpegs, options.device)
    failures = [item for item in items if isinstance(item, ImageFailure)]
    host = {item.index: item.pixels for item in items if isinstance(item, DecodedImage)}
    for item in rejected:  # JPEGs the device decoder refused: Pillow says what they are
        done = _decode_cpu(item.index, item.path, item.data.numpy().tobytes(), options)
        if isinstance(done, ImageFailure):
            failures.append(done)
        else:
            host[done.index] = done.pixels
    order = sorted([*decoded, *host])
    failures.sort(key=lambda failure: failure.index)
    if not order:
        return PixelBatch([], None, failures)
    size, device = options.image_size, options.device
    out = torch.empty((len(order), size, size, 3), dtype=torch.uint8, device=device)
    out = out.permute(0, 3, 1, 2)  # channels-last, the layout the model runs in
    row = {index: position for position, index in enumerate(order)}
    if decoded:
        header = {jpeg.index: jpeg.header for jpeg in jpegs}
        upright = [orient(image, header[i].orientation) for i, image in decoded.items()]
        resize_into(out, [row[i] for i in decoded], upright)
    if host:
        _upload_into(out, [row[i] for i in host], list(host.values()))
    return PixelBatch(order, out, failures)


def _upload_into(out: torch.Tensor, rows: list[int], pixels: list[torch.Tensor]) -> None:
    """Copy ``(S, S, 3)`` host images into ``out[rows]``: one stacked, page-locked copy."""
    stack = torch.stack(pixels)
    if out.device.type == "cuda":
        stack = stack.pin_memory().to(out.device, non_blocking=True)
    out[torch.tensor(rows, device=out.device)] = stack.permute(0, 3, 1, 2)


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
