"""Safe image decoding: every failure becomes an :class:`ImageDecodeError` with a code.

Files come from users, so they may be empty, truncated, not images at all, or crafted to
expand to billions of pixels. Decoding is always complete (``Image.load``) so truncation is
caught here rather than later inside a batch.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import ImageDecodeError

DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_BYTES = 50 * 2**20

# Leading bytes of common formats: a file that starts like an image but that Pillow
# cannot identify is a damaged image rather than something else.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")

# What Pillow raises when the bytes of a recognised image are damaged.
_CORRUPT_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error)


@dataclass(frozen=True)
class ImageInfo:
    """Size and format of a decoded image."""

    width: int
    height: int
    format: str
    mode: str


def inspect_image(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImageInfo:
    """Fully decode the image at ``path`` and describe it.

    Raises :class:`ImageDecodeError` with code ``not_an_image`` (empty or unrecognised
    file), ``image_corrupt`` (truncated or damaged data), ``image_too_large`` (more than
    ``max_pixels`` pixels, a decompression bomb, or more than ``max_bytes`` bytes) or
    ``image_unreadable`` (the file cannot be opened).
    """
    image = _decode(path, max_pixels=max_pixels, max_bytes=max_bytes)
    return ImageInfo(
        width=image.width,
        height=image.height,
        format=image.format or "",
        mode=image.mode,
    )


def load_rgb(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode ``path`` into an RGB image, rotated as its EXIF orientation says.

    Transparent areas are composited on white. ``draft_size`` lets a JPEG decode at a
    reduced scale that still keeps both sides at least that many pixels (much faster for
    large photos that will be shrunk anyway). Raises :class:`ImageDecodeError` as
    :func:`inspect_image` does.
    """
    image = _decode(path, max_pixels=max_pixels, max_bytes=max_bytes, draft_size=draft_size)
    try:
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except _CORRUPT_ERRORS as err:
        raise ImageDecodeError(str(path), "image_corrupt", f"cannot convert image: {err}") from err


def _decode(
    path: str | Path, *, max_pixels: int, max_bytes: int, draft_size: int | None = None
) -> Image.Image:
    name = str(path)
    try:
        n_bytes = os.stat(path).st_size
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the full decode
    except OSError as err:
        raise ImageDecodeError(name, "image_unreadable", f"cannot open file: {err}") from err
    with handle:
        if n_bytes == 0:
            raise ImageDecodeError(name, "not_an_image", "file is empty")
        if n_bytes > max_bytes:
            reason = f"file has {n_bytes} bytes, more than the limit of {max_bytes}"
            raise ImageDecodeError(name, "image_too_large", reason)
        return _decode_open_file(handle, name, max_pixels=max_pixels, draft_size=draft_size)


def _decode_open_file(
    handle: BinaryIO, name: str, *, max_pixels: int, draft_size: int | None
) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow warns (and past twice its limit, raises) on decompression bombs.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(handle)
        except UnidentifiedImageError as err:
            raise ImageDecodeError(name, "not_an_image", "not a recognised image format") from err
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
            raise ImageDecodeError(name, "image_too_large", f"decompression bomb: {err}") from err
        except _CORRUPT_ERRORS as err:
            raise ImageDecodeError(name, "image_corrupt", f"cannot read header: {err}") from err
    width, height = image.size
    if width * height > max_pixels:
        reason = f"{width}x{height} pixels is more than the limit of {max_pixels}"
        raise ImageDecodeError(name, "image_too_large", reason)
    if draft_size is not None and image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    try:
        image.load()
    except _CORRUPT_ERRORS as err:
        raise ImageDecodeError(name, "image_corrupt", f"cannot decode image data: {err}") from err
    return image


def _looks_like_image(head: bytes) -> bool:
    is_webp = head.startswith(b"RIFF") and head[8:12] == b"WEBP"
    return is_webp or head.startswith(_SIGNATURES)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
