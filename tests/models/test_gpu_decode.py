"""The device-decode path, run on the CPU (the same code nvJPEG runs on CUDA), and on CUDA."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from models.backbone import BackboneSpec, load_backbone
from models.device_batches import iter_device_batches
from models.embedding import ImagePoolDataset, collate_pixels, embed_images
from models.gpu_decode import (
    DecodedImage,
    DecodeOptions,
    EncodedJpeg,
    decode_items,
    orient,
    read_item,
    resize_square,
)
from models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, read_header
from models.jpeg_structure import UnfitJpeg, check_jpeg_bytes

CPU = torch.device("cpu")
ORIENTATION = 0x0112


def options(device: torch.device = CPU, size: int = 112) -> DecodeOptions:
    return DecodeOptions(device, size, DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)


def photo_like(fashion_image: np.ndarray, width: int, height: int, tint: int) -> Image.Image:
    """A Fashion-MNIST garment enlarged to ``width`` x ``height`` and tinted (RGB)."""
    grey = Image.fromarray(fashion_image).resize((width, height), Image.Resampling.BICUBIC)
    rgb = np.asarray(grey, dtype=np.float32)[..., None] * np.array([1.0, 0.8, 0.6]) + tint
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


@pytest.fixture
def mixed_pool(fashion_mnist, tmp_path: Path) -> list[Path]:
    """JPEGs (RGB, grey, CMYK, rotated by EXIF) and PNGs, plus four files that cannot decode."""
    images = fashion_mnist.test_images
    paths = []
    for i in range(14):
        image = photo_like(images[i], 150 + 7 * i, 130, tint=10 * i)
        kind = ("jpg", "png", "grey.jpg", "cmyk.jpg", "exif.jpg")[i % 5]
        path = tmp_path / f"{i:02d}.{kind}"
        if kind == "png":
            image.save(path)
        elif kind == "grey.jpg":
            image.convert("L").save(path, quality=92)
        elif kind == "cmyk.jpg":
            image.convert("CMYK").save(path, quality=92)
        else:
            exif = Image.Exif()
            exif[ORIENTATION] = 6 if kind == "exif.jpg" else 1
            image.save(path, quality=92, exif=exif)
        paths.append(path)
    truncated, text, empty = tmp_path / "cut.jpg", tmp_path / "text.jpg", tmp_path / "empty.png"
    truncated.write_bytes(paths[0].read_bytes()[:900])
    text.write_text("not an image")
    empty.write_bytes(b"")
    return [*paths[:5], truncated, *paths[5:9], text, tmp_path / "absent.jpg", *paths[9:], empty]


def cpu_path_batch(paths: list[Path], size: int = 112):
    dataset = ImagePoolDataset(paths, image_size=size, max_pixels=DEFAULT_MAX_PIXELS)
    return collate_pixels([dataset[i] for i in range(len(paths))])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_images_upright_exactly_as_pillow(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    image = Image.fromarray(rng.integers(0, 256, size=(5, 8, 3), dtype=np.uint8))
    image.getexif()[ORIENTATION] = orientation
    expected = np.asarray(ImageOps.exif_transpose(image))
    stored = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    np.testing.assert_array_equal(orient(stored, orientation).permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("shape", [(28, 28), (60, 90), (300, 200), (112, 112)])
def test_resize_square_matches_pillow_within_one_level(fashion_mnist, shape) -> None:
    image = photo_like(fashion_mnist.test_images[3], shape[1], shape[0], tint=30)
    expected = np.asarray(image.resize((112, 112), Image.Resampling.BILINEAR), dtype=np.int16)
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)
    got = resize_square([tensor, tensor.clone()], 112)
    assert got.shape == (2, 3, 112, 112) and got.dtype == torch.uint8
    difference = np.abs(got[1].permute(1, 2, 0).numpy().astype(np.int16) - expected)
    assert difference.max() <= 1 and difference.mean() < 0.3
    with pytest.raises(ValueError, match="at least one image"):
        resize_square([], 112)


def test_jpeg_structure_check_reads_headers_as_pillow_does(
    mixed_pool, fashion_mnist, tmp_path: Path
) -> None:
    progressive = tmp_path / "progressive.jpg"
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    photo_like(fashion_mnist.test_images[7], 90, 70, 5).save(
        progressive, progressive=True, exif=exif
    )
    device_jpegs = [p for p in mixed_pool if p.name.endswith(("00.jpg", "grey.jpg", "exif.jpg"))]
    for path in [*device_jpegs, progressive]:
        data = path.read_bytes()
        layout = check_jpeg_bytes(data)
        assert layout.header == read_header(data, path.name), path.name
        assert layout.end == len(data)  # Pillow writes nothing after EOI
    assert check_jpeg_bytes(progressive.read_bytes()).header.orientation == 8
    for unfit in ("01.png", "03.cmyk.jpg", "cut.jpg", "text.jpg"):
        with pytest.raises(UnfitJpeg):
            check_jpeg_bytes(next(p for p in mixed_pool if p.name == unfit).read_bytes())
    trailing = device_jpegs[0].read_bytes()
    assert check_jpeg_bytes(trailing + b"\xff\xd8 trailing bytes").end == len(trailing)


def test_reader_sends_sound_jpegs_to_the_device_and_decodes_the_rest(mixed_pool) -> None:
    kinds = [type(read_item(i, str(p), options())).__name__ for i, p in enumerate(mixed_pool)]
    names = [p.name for p in mixed_pool]
    for name, kind in zip(names, kinds, strict=True):
        if name.endswith(("00.jpg", "grey.jpg", "exif.jpg")):
            assert kind == EncodedJpeg.__name__, name
        elif name.endswith(("png", "cmyk.jpg")) and name != "empty.png":
            assert kind == DecodedImage.__name__, name
        elif name in ("cut.jpg", "text.jpg", "absent.jpg", "empty.png"):
            assert kind == "ImageFailure", name  # the structure check keeps cut.jpg away


def test_device_decode_gives_the_cpu_paths_pixels_and_failures(mixed_pool) -> None:
    items = [read_item(i, str(p), options()) for i, p in enumerate(mixed_pool)]
    device = decode_items(items, options())
    cpu = cpu_path_batch(mixed_pool)
    assert device.indices == cpu.indices and len(device.indices) == 14
    assert [(f.index, f.code) for f in device.failures] == [(f.index, f.code) for f in cpu.failures]
    assert {f.code for f in cpu.failures} == {"image_corrupt", "not_an_image", "image_unreadable"}
    difference = (device.pixels.to(torch.int16) - cpu.pixels.to(torch.int16)).abs()
    assert difference.max() <= 1 and difference.float().mean() < 0.3


def test_batches_arrive_in_order_and_an_abandoned_pipeline_stops(mixed_pool) -> None:
    batches = list(iter_device_batches(mixed_pool, options(), batch_size=4, read_threads=3))
    assert [batch.size for batch in batches] == [4, 4, 4, 4, 2]
    seen = sorted(
        [*(i for b in batches for i in b.indices), *(f.index for b in batches for f in b.failures)]
    )
    assert seen == list(range(18))
    before = threading.active_count()
    pipeline = iter_device_batches(mixed_pool, options(), batch_size=2, read_threads=2)
    next(pipeline)
    pipeline.close()  # joins the decode thread and its readers
    assert threading.active_count() <= before
    with pytest.raises(ValueError, match="read_threads"):
        next(iter_device_batches(mixed_pool, options(), batch_size=2, read_threads=0))


def test_embedding_with_device_decode_matches_the_cpu_path(mixed_pool) -> None:
    backbone = load_backbone(BackboneSpec(image_size=112))
    cpu = embed_images(mixed_pool, backbone, device=CPU, precision="fp32", batch_size=8)
    device = embed_images(
        mixed_pool, backbone, device=CPU, precision="fp32", batch_size=8, device_decode=True
    )
    assert (cpu.decoder, device.decoder) == ("cpu", "device")
    assert device.indices == cpu.indices and device.failures == cpu.failures
    a, b = cpu.embeddings.astype(np.float64), device.embeddings.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.995, cosine.min()  # resizes differ by at most one level


@pytest.mark.gpu
def test_nvjpeg_decode_matches_the_cpu_decoder(mixed_pool) -> None:
    cuda = torch.device("cuda")
    items = [read_item(i, str(p), options(cuda)) for i, p in enumerate(mixed_pool)]
    on_gpu = decode_items(items, options(cuda))
    on_cpu = decode_items(
        [read_item(i, str(p), options()) for i, p in enumerate(mixed_pool)], options()
    )
    assert on_gpu.pixels.device.type == "cuda" and on_gpu.indices == on_cpu.indices
    assert on_gpu.failures == on_cpu.failures
    difference = (on_gpu.pixels.cpu().to(torch.int16) - on_cpu.pixels.to(torch.int16)).abs()
    assert difference.float().mean() < 2.0  # nvJPEG's IDCT and upsampling differ slightly


@pytest.mark.gpu
def test_cuda_pipeline_overlaps_and_embeds_like_the_cpu(mixed_pool) -> None:
    cpu = embed_images(mixed_pool, load_backbone(BackboneSpec()), device=CPU, precision="fp32")
    gpu = embed_images(
        mixed_pool * 20, load_backbone(BackboneSpec()), device=torch.device("cuda"), batch_size=32
    )
    assert (gpu.decoder, gpu.precision) == ("device", "bf16")
    assert gpu.indices[: len(cpu.indices)] == cpu.indices and len(gpu.failures) == 20 * len(
        cpu.failures
    )
    a, b = cpu.embeddings.astype(np.float64), gpu.embeddings[: len(cpu.indices)].astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.98, cosine.min()
