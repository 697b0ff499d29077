"""The JPEG structure check and the batch staging it runs on (made images, no data package)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.embedding import ImagePoolDataset, collate_pixels
from models.errors import ImageDecodeError
from models.gpu_decode import DecodeOptions, EncodedJpeg, decode_items, read_batch, read_item
from models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_rgb, read_header
from models.jpeg_structure import UnfitJpeg, check_jpeg, check_jpeg_bytes, marker_positions
from models.staging import stage_files

CPU = torch.device("cpu")
ENCODINGS = {
    "4:2:0": {},
    "4:2:2": {"subsampling": 1},
    "4:4:4": {"subsampling": 0},
    "restart markers": {"restart_marker_blocks": 3},
    "progressive": {"progressive": True},
    "grey": {"grey": True},
}


def noise_photo(seed: int, size: tuple[int, int] = (90, 70)) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    rgb = np.stack([x * 2.5, y * 3.0, (x * y) % 200], axis=-1) + rng.normal(0, 20, (*x.shape, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def jpeg(seed: int, grey: bool = False, **options: object) -> bytes:
    image = noise_photo(seed).convert("L") if grey else noise_photo(seed)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, **options)
    return out.getvalue()


def test_marker_scan_finds_what_a_byte_by_byte_scan_finds() -> None:
    rng = np.random.default_rng(0)
    data = rng.choice(np.array([0x00, 0xFF, 0xD0, 0xD7, 0xD8, 0xD9, 0xC4, 0x12], np.uint8), 5000)
    expected = [
        p
        for p in range(len(data) - 1)
        if data[p] == 0xFF and data[p + 1] not in (0x00, 0xFF, *range(0xD0, 0xD8))
    ]
    assert marker_positions(data) == expected and len(expected) > 300


@pytest.mark.parametrize("name", ENCODINGS)
def test_sound_encodings_pass_with_pillows_header(name: str) -> None:
    data = jpeg(1, **ENCODINGS[name])
    layout = check_jpeg_bytes(data)
    assert layout.header == read_header(data, name) and layout.end == len(data)


def test_rgb_stored_without_ycbcr_is_left_to_pillow(tmp_path: Path) -> None:
    path = tmp_path / "rgb.jpg"
    noise_photo(2).save(path, quality=92, keep_rgb=True)
    with pytest.raises(UnfitJpeg, match="RGB"):
        check_jpeg_bytes(path.read_bytes())
    options = DecodeOptions(CPU, 48, DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)
    device = decode_items([read_item(0, str(path), options)], options)
    cpu = collate_pixels([ImagePoolDataset([path], image_size=48, max_pixels=10**8)[0]])
    assert torch.equal(device.pixels, cpu.pixels)  # both decoded by Pillow, colours intact


def test_files_end_to_end_check_as_they_do_alone(tmp_path: Path) -> None:
    files = [jpeg(seed, **options) for seed, options in enumerate(ENCODINGS.values())]
    files[2] = files[2][:-1]  # ends in 0xFF, right before the next file's SOI
    paths = []
    for i, data in enumerate(files):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(data)
    staged = stage_files([str(p) for p in paths], max_bytes=DEFAULT_MAX_BYTES, pin=False)
    markers = marker_positions(staged.array())
    for data, bounds in zip(staged.contents, staged.bounds, strict=True):
        assert bytes(staged.array()[bounds[0] : bounds[1]]) == data
        if data == files[2]:
            with pytest.raises(UnfitJpeg, match="runs to the end"):
                check_jpeg(data, markers, bounds[0])
        else:
            assert check_jpeg(data, markers, bounds[0]) == check_jpeg_bytes(data)


def test_a_file_over_the_byte_limit_gets_the_cpu_paths_failure(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg(3))
    limit = path.stat().st_size - 1
    options = DecodeOptions(CPU, 48, DEFAULT_MAX_PIXELS, limit)
    with pytest.raises(ImageDecodeError) as cpu:
        load_rgb(path, max_bytes=limit)
    failure = read_batch(0, [str(path)], options)[0]
    assert failure.code == cpu.value.code == "image_too_large"
    assert failure.reason == cpu.value.reason  # the file's real size, as the CPU path says
    options = DecodeOptions(CPU, 48, DEFAULT_MAX_PIXELS, limit + 1)
    assert isinstance(read_batch(0, [str(path)], options)[0], EncodedJpeg)
