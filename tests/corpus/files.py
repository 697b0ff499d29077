"""Files of the bad-input corpus, made at test time: damaged, crafted or unusual images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image as PILImage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims `width` x `height` 8-bit grey pixels.

    Its one IDAT holds a single compressed row, so the file is a few dozen bytes however
    large the header says the image is (a decompression bomb's first step).
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (width + 1))
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def encoded(image: PILImage.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def gradient(size: int = 40) -> np.ndarray:
    """A (size, size, 3) uint8 colour gradient, so that conversions have something to keep."""
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    red, green = np.meshgrid(ramp, ramp[::-1])
    blue = np.full_like(red, 96.0)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def other_colour_models() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, Pillow mode as stored) of images that are not 8-bit RGB."""
    rgb = PILImage.fromarray(gradient())
    grey16 = PILImage.fromarray(gradient()[..., 0].astype(np.uint16) * 257)  # mode I;16
    rgba = rgb.copy()
    rgba.putalpha(230)  # composited on white, the gradient stays visible
    return {
        "cmyk.jpg": (encoded(rgb.convert("CMYK"), "JPEG"), "CMYK"),
        "grey16.png": (encoded(grey16, "PNG"), "I;16"),
        "palette.png": (encoded(rgb.convert("P", palette=PILImage.Palette.ADAPTIVE), "PNG"), "P"),
        "rgba.png": (encoded(rgba, "PNG"), "RGBA"),
    }
