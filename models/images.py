"""Safe image decoding: every failure becomes an :class:`ImageDecodeError` with a code.

Files come from users, so they may be empty, truncated, not images at all, or crafted to
expand to billions of pixels. Decoding is always complete (``Image.load``) so truncation is
caught here rather than later inside a batch.
"""

from __future__ import annotations

import io
import os
import struct
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
_ORIENTATION_TAG = 0x0112
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
    return _upright_rgb(image, str(path))


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding its pixels.

    ``orientation`` is the EXIF orientation tag (1 = upright, 2-8 = flipped and/or rotated).
    """

    format: str
    mode: str
    width: int
    height: int
    orientation: int


def read_header(
    data: bytes,
    name: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImageHeader:
    """Read the header of the encoded image ``data`` (from file ``name``) without decoding it.

    Raises :class:`ImageDecodeError` as :func:`inspect_image` does, except that damaged
    pixel data is only found when the image is decoded.
    """
    _check_byte_count(len(data), name, max_bytes)
    image = _open_checked(io.BytesIO(data), name, max_pixels=max_pixels)
    try:
        orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
    except _CORRUPT_ERRORS:
        orientation = 1  # an unreadable EXIF block leaves the image as stored, as Pillow does
    return ImageHeader(
        format=image.format or "",
        mode=image.mode,
        width=image.width,
        height=image.height,
        orientation=orientation if 1 <= orientation <= 8 else 1,
    )


def load_rgb_bytes(
    data: bytes,
    name: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    draft_size: int | None = None,
) -> Image.Image:
    """:func:`load_rgb` for an image already read into memory (``name`` is for messages)."""
    _check_byte_count(len(data), name, max_bytes)
    image = _decode_open_file(io.BytesIO(data), name, max_pixels=max_pixels, draft_size=draft_size)
    return _upright_rgb(image, name)


def _upright_rgb(image: Image.Image, name: str) -> Image.Image:
    try:
        return _to_rgb(ImageOps.exif_transpose(image))
    except _CORRUPT_ERRORS as err:
        raise ImageDecodeError(name, "image_corrupt", f"cannot convert image: {err}") from err


def _check_byte_count(n_bytes: int, name: str, max_bytes: int) -> None:
    if n_bytes == 0:
        raise ImageDecodeError(name, "not_an_image", "file is empty")
    if n_bytes > max_bytes:
        reason = f"file has {n_bytes} bytes, more than the limit of {max_bytes}"
        raise ImageDecodeError(name, "image_too_large", reason)


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
        _check_byte_count(n_bytes, name, max_bytes)
        return _decode_open_file(handle, name, max_pixels=max_pixels, draft_size=draft_size)


def _decode_open_file(
    handle: BinaryIO, name: str, *, max_pixels: int, draft_size: int | None
) -> Image.Image:
    image = _open_checked(handle, name, max_pixels=max_pixels)
    if draft_size is not None and image.format == "JPEG":
        image.draft("RGB", (draft_size, draft_size))
    try:
        image.load()
    except _CORRUPT_ERRORS as err:
        raise ImageDecodeError(name, "image_corrupt", f"cannot decode image data: {err}") from err
    return image


def _open_checked(handle: BinaryIO, name: str, *, max_pixels: int) -> Image.Image:
    """Open (read the header of) an image, refusing bombs and images over ``max_pixels``.

    Pillow warns on a decompression bomb (and past twice its limit, raises). The limit is
    checked here rather than by turning the warning into an error: warning filters are
    process-wide, and changing them in a decoding thread races with every other thread.
    """
    try:
        image = Image.open(handle)
    except UnidentifiedImageError as err:
        raise ImageDecodeError(name, "not_an_image", "not a recognised image format") from err
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageDecodeError(name, "image_too_large", f"decompression bomb: {err}") from err
    except _CORRUPT_ERRORS as err:
        raise ImageDecodeError(name, "image_corrupt", f"cannot read header: {err}") from err
    width, height = image.size
    bomb_limit = Image.MAX_IMAGE_PIXELS
    if bomb_limit is not None and width * height > bomb_limit:
        reason = f"decompression bomb: {width}x{height} pixels is over Pillow's {bomb_limit}"
        raise ImageDecodeError(name, "image_too_large", reason)
    if width * height > max_pixels:
        reason = f"{width}x{height} pixels is more than the limit of {max_pixels}"
        raise ImageDecodeError(name, "image_too_large", reason)
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
