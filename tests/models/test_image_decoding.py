import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.errors import ImageDecodeError, ModelError
from models.images import ImageInfo, inspect_image, load_rgb


def noise_image(mode: str, size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    pixels = rng.integers(0, 256, size=(size[1], size[0], *channels), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width x height`` grey pixels (the data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def decode_error(path: Path, **limits: int) -> ImageDecodeError:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape, whatever the filters say
        with pytest.raises(ImageDecodeError) as info:
            inspect_image(path, **limits)
        with pytest.raises(ImageDecodeError):
            load_rgb(path, **limits)
    return info.value


@pytest.mark.parametrize(
    "mode, suffix, image_format", [("L", ".png", "PNG"), ("RGB", ".jpg", "JPEG")]
)
def test_inspect_valid_images(tmp_path: Path, mode: str, suffix: str, image_format: str) -> None:
    path = tmp_path / f"image{suffix}"
    noise_image(mode).save(path)
    assert inspect_image(path) == ImageInfo(width=64, height=48, format=image_format, mode=mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_load_rgb_converts_to_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "image.png"
    noise_image(mode).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (64, 48)


def test_load_rgb_keeps_grey_values(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    grey = noise_image("L")
    grey.save(path)
    rgb = np.asarray(load_rgb(path))
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], np.asarray(grey))


def test_load_rgb_composites_transparency_on_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(path)
    assert load_rgb(path).getpixel((0, 0)) == (255, 255, 255)


def test_load_rgb_applies_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    noise_image("RGB", size=(40, 20)).save(path, exif=exif)
    assert inspect_image(path).width == 40
    assert load_rgb(path).size == (20, 40)


def test_draft_decodes_large_jpeg_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "large.jpg"
    noise_image("RGB", size=(1024, 768)).save(path)
    image = load_rgb(path, draft_size=224)
    assert min(image.size) >= 224 and image.size[0] < 1024


@pytest.mark.parametrize("suffix, image_format", [(".png", "PNG"), (".jpg", "JPEG")])
def test_truncated_file_is_corrupt(tmp_path: Path, suffix: str, image_format: str) -> None:
    path = tmp_path / f"truncated{suffix}"
    noise_image("RGB", size=(256, 256)).save(path, format=image_format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = decode_error(path)
    assert error.code == "image_corrupt" and error.path == str(path)


def test_png_cut_inside_its_header_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    noise_image("L").save(path)
    path.write_bytes(path.read_bytes()[:20])
    assert decode_error(path).code == "image_corrupt"


def test_text_file_named_png_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n")
    assert decode_error(path).code == "not_an_image"


def test_empty_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    error = decode_error(path)
    assert error.code == "not_an_image" and "empty" in error.reason


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    assert decode_error(tmp_path / "absent.png").code == "image_unreadable"


@pytest.mark.parametrize(
    "width, height",
    [
        (10_000, 10_000),
        (60_000, 60_000),
    ],  # past Pillow's warning limit, past its error limit
)
def test_decompression_bomb_is_too_large(tmp_path: Path, width: int, height: int) -> None:
    path = png_declaring(tmp_path / "bomb.png", width, height)
    error = decode_error(path, max_pixels=10**10)
    assert error.code == "image_too_large"


def test_more_pixels_than_the_limit_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    noise_image("L").save(path)
    error = decode_error(path, max_pixels=64 * 48 - 1)
    assert error.code == "image_too_large" and "64x48" in error.reason
    assert inspect_image(path, max_pixels=64 * 48).width == 64


def test_more_bytes_than_the_limit_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    noise_image("L").save(path)
    assert decode_error(path, max_bytes=100).code == "image_too_large"


def test_decode_error_is_a_model_error_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("text")
    error = decode_error(path)
    assert isinstance(error, ModelError)
    assert str(path) in str(error) and "not_an_image" in str(error)
