"""One failure rule on every device: damaged JPEGs through the device pipeline and the CPU path.

Each variant is made here from a sound JPEG of a made image (no data package needed). The
device pipeline (``read_item``/``decode_items`` and ``iter_device_batches``) must give every
file the CPU path's verdict and code, on the CPU and, under the ``gpu`` marker, on CUDA; and
the structure check must keep every file the CPU path rejects away from the device decoder.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.batches import ImageFailure
from models.device_batches import iter_device_batches
from models.embedding import ImagePoolDataset, collate_pixels
from models.gpu_decode import (
    DecodeOptions,
    EncodedJpeg,
    decode_items,
    read_item,
)
from models.images import DEFAULT_MAX_BYTES
from models.jpeg_structure import UnfitJpeg, check_jpeg_bytes

MAX_PIXELS = 10**10  # above Pillow's bomb limit, so the bomb check is what stops bombs
SIZE = 64
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def made_photo(width: int = 120, height: int = 88, seed: int = 0) -> np.ndarray:
    """A smooth colour scene with grain: ``(height, width, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([x / width * 255, y / height * 255, (x + y) % 97 * 2.5], axis=-1)
    return np.clip(rgb + rng.normal(0, 9, rgb.shape), 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment up to and including the first SOS."""
    found, position = [], 2
    while True:
        marker = data[position + 1]
        end = position + 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
        found.append((marker, position, end))
        if marker == 0xDA:
            return found
        position = end


def segment(data: bytes, marker: int, nth: int = 0) -> tuple[int, int]:
    return [(s, e) for m, s, e in segments(data) if m == marker][nth]


def without(data: bytes, marker: int) -> bytes:
    """``data`` with every ``marker`` segment before the scan cut out."""
    for start, end in sorted(((s, e) for m, s, e in segments(data) if m == marker), reverse=True):
        data = data[:start] + data[end:]
    return data


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def frame_patch(data: bytes, offset: int, new: bytes) -> bytes:
    """Overwrite bytes of the frame header's body (offset 0: precision, 1: height...)."""
    return patched(data, segment(data, 0xC0)[0] + 4 + offset, new)


def scan_end(data: bytes) -> int:
    return segment(data, 0xDA)[1]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.fromarray(made_photo()).save(out, "PNG")
    return out.getvalue()


def cut_after_progressive_scans(data: bytes, scans: int) -> bytes:
    """A progressive JPEG cut just before its ``scans + 1``-th scan header."""
    position = -1
    for _ in range(scans + 1):
        position = data.index(b"\xff\xda", position + 1)
    return data[:position]


def bad_huffman(data: bytes) -> bytes:
    """The first DHT's code lengths overfilled (as many symbols: two 1-bit codes, then more)."""
    start, _ = segment(data, 0xC4)
    assert data[start + 5 : start + 8] == b"\x00\x01\x05"  # the standard luminance DC table
    return patched(data, start + 5, b"\x02\x01\x03")


VARIANTS: dict[str, Callable[[bytes, bytes], bytes]] = {
    # name: (sound baseline JPEG, sound progressive JPEG) -> damaged bytes
    "cut_in_tables": lambda b, p: b[:100],
    "cut_after_scan_header": lambda b, p: b[: scan_end(b)],
    "cut_mid_scan": lambda b, p: b[: (scan_end(b) + len(b)) // 2],
    "cut_900_bytes": lambda b, p: b[:900],
    "cut_10_before_end": lambda b, p: b[:-10],
    "missing_eoi": lambda b, p: b[:-2],
    "missing_last_byte": lambda b, p: b[:-1],
    "length_past_end": lambda b, p: patched(b, segment(b, 0xDB)[0] + 2, b"\xff\xf0"),
    "length_below_two": lambda b, p: patched(b, segment(b, 0xC0)[0] + 2, b"\x00\x01"),
    "no_frame_header": lambda b, p: without(b, 0xC0),
    "no_scan": lambda b, p: b[: segment(b, 0xDA)[0]] + b"\xff\xd9",
    "no_huffman_tables": lambda b, p: without(b, 0xC4),
    "no_quantisation_tables": lambda b, p: without(b, 0xDB),
    "zero_height": lambda b, p: frame_patch(b, 1, b"\x00\x00"),
    "zero_width": lambda b, p: frame_patch(b, 3, b"\x00\x00"),
    "two_components": lambda b, p: frame_patch(b, 5, b"\x02"),
    "twelve_bit": lambda b, p: frame_patch(b, 0, b"\x0c"),
    "garbage_header": lambda b, p: b[:2] + bytes(range(7, 250, 3)) + b[2 + 81 :],
    "undefined_quant_table": lambda b, p: frame_patch(b, 8, b"\x03"),
    "undefined_huffman_table": lambda b, p: patched(b, segment(b, 0xDA)[0] + 6, b"\x33"),
    "bogus_huffman_table": lambda b, p: bad_huffman(b),
    "over_pixel_limit": lambda b, p: frame_patch(b, 1, struct.pack(">HH", 65000, 65000)),
    "decompression_bomb": lambda b, p: frame_patch(b, 1, struct.pack(">HH", 10000, 10000)),
    "png_named_jpg": lambda b, p: png_bytes(),
    "empty": lambda b, p: b"",
    "text": lambda b, p: b"these are not pixels\n",
    "progressive_cut_after_3_scans": lambda b, p: cut_after_progressive_scans(p, 3),
    "progressive_missing_eoi": lambda b, p: p[:-2],
    # Damaged in ways libjpeg recovers from: both paths must decode these.
    "trailing_bytes": lambda b, p: b + b"\xff\xd8 more bytes after EOI",
    "scan_header_then_eoi": lambda b, p: b[: scan_end(b)] + b"\xff\xd9",
    "sound_baseline": lambda b, p: b,
    "sound_progressive": lambda b, p: p,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("damaged")
    pixels = made_photo()
    baseline, progressive = encode(pixels), encode(pixels, progressive=True)
    paths = []
    for name, damage in VARIANTS.items():
        path = folder / f"{name}.jpg"
        path.write_bytes(damage(baseline, progressive))
        paths.append(path)
    return paths


def cpu_verdicts(paths: list[Path]) -> dict[str, str]:
    """What the CPU path (``ImagePoolDataset``) says of each file: ``ok`` or its code."""
    dataset = ImagePoolDataset(paths, image_size=SIZE, max_pixels=MAX_PIXELS)
    batch = collate_pixels([dataset[i] for i in range(len(paths))])
    return verdicts(paths, batch.indices, batch.failures)


def verdicts(paths: list[Path], indices: list[int], failures: list[ImageFailure]) -> dict:
    out = {paths[i].stem: "ok" for i in indices}
    out.update({paths[f.index].stem: f.code for f in failures})
    return dict(sorted(out.items()))


def options(device: str) -> DecodeOptions:
    return DecodeOptions(torch.device(device), SIZE, MAX_PIXELS, DEFAULT_MAX_BYTES)


def test_the_cpu_path_rejects_what_it_should(corpus) -> None:
    cpu = cpu_verdicts(corpus)
    assert len(VARIANTS) >= 12 + 4
    truncated = [name for name in cpu if "cut" in name or "missing" in name]
    assert len(truncated) == 9 and {cpu[name] for name in truncated} == {"image_corrupt"}
    assert cpu["over_pixel_limit"] == cpu["decompression_bomb"] == "image_too_large"
    assert cpu["png_named_jpg"] == "ok" and cpu["text"] == cpu["empty"] == "not_an_image"
    assert cpu["trailing_bytes"] == cpu["sound_baseline"] == cpu["sound_progressive"] == "ok"
    rejected = [name for name, verdict in cpu.items() if verdict != "ok"]
    assert len(rejected) >= 20, rejected


def test_the_structure_check_keeps_every_rejected_jpeg_from_the_device(corpus) -> None:
    cpu = cpu_verdicts(corpus)
    for index, path in enumerate(corpus):
        if cpu[path.stem] == "ok":
            continue
        assert not isinstance(read_item(index, str(path), options("cpu")), EncodedJpeg)
        if cpu[path.stem] != "image_too_large":  # those are sound, only too big
            with pytest.raises(UnfitJpeg):
                check_jpeg_bytes(path.read_bytes())
    for sound in ("sound_baseline", "sound_progressive", "trailing_bytes"):
        check_jpeg_bytes(next(p for p in corpus if p.stem == sound).read_bytes())


@pytest.mark.parametrize("device", DEVICES)
def test_device_pipeline_gives_every_damaged_jpeg_the_cpu_verdict(corpus, device: str) -> None:
    cpu = cpu_verdicts(corpus)
    items = [read_item(i, str(path), options(device)) for i, path in enumerate(corpus)]
    batch = decode_items(items, options(device))
    assert verdicts(corpus, batch.indices, batch.failures) == cpu
    streamed = list(iter_device_batches(corpus, options(device), batch_size=5, read_threads=2))
    indices = [i for b in streamed for i in b.indices]
    failures = [f for b in streamed for f in b.failures]
    assert verdicts(corpus, indices, failures) == cpu
    dataset = ImagePoolDataset(corpus, image_size=SIZE, max_pixels=MAX_PIXELS)
    expected = {
        f.index: f for f in collate_pixels([dataset[i] for i in range(len(corpus))]).failures
    }
    assert {f.index: f for f in failures} == expected  # same code and reason, file by file
    for b in streamed:
        assert b.pixels is None or b.pixels.device.type == device
