"""GPU figures of ``bench/throughput.py``, all timed in one run on the same files.

* ``gpu_images_per_s``: the project end to end (``embed_images`` on CUDA, then the head's
  probabilities and their entropy) on 256 px JPEGs; ``gpu_photo_images_per_s`` the same on
  500x375 photo JPEGs;
* ``gpu_model_only_images_per_s``: the same model code (bf16, channels-last) on random
  uint8 pixels already on the GPU, batches of 512;
* ``gpu_raw_decode_images_per_s``: the files held in memory, one plain
  ``torchvision.io.decode_jpeg(list, device="cuda")`` plus one resize per batch;
* ``gpu_decode_ceiling_images_per_s``: the project's decode path alone (``iter_device_batches``).

Needs only torch, torchvision, numpy and pillow (scikit-image for the photos when present):
no data package, so it runs on a bare GPU machine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from models.backbone import Backbone
from models.device_batches import iter_device_batches
from models.gpu_decode import DecodeOptions
from models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from models.inference import forward_uint8, normaliser, plan_inference, prepare_module

PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "camera")
PHOTO_SIZE = (500, 375)  # width, height


def garment_images(n: int = 1000) -> np.ndarray:
    """Fashion-MNIST test images when the data is installed, else made ``(n, 28, 28)`` uint8."""
    from models.datasets import load_fashion_mnist

    try:
        return load_fashion_mnist("test")[0]
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:28, 0:28] / 27.0
        shapes = [np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / w) for cx, cy, w in rng.random((n, 3))]
        return np.clip(np.array(shapes) * 255 + rng.normal(0, 12, (n, 28, 28)), 0, 255).astype(
            np.uint8
        )


def write_photo_jpegs(directory: Path, count: int) -> tuple[list[Path], str]:
    """``count`` 500x375 quality-90 JPEGs: random crops of scikit-image's bundled photos, or
    made photo-like scenes without it. Returns the paths and which source was used."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photos, source = _photo_sources()
    width, height = PHOTO_SIZE
    scaled = []  # each photo at three scales that hold a crop
    for photo in photos:
        fit = max(width / photo.width, height / photo.height)
        for factor in (1.0, 1.2, 1.4):
            size = (int(photo.width * fit * factor) + 1, int(photo.height * fit * factor) + 1)
            scaled.append(photo.resize(size, Image.Resampling.BICUBIC))
    jobs = []
    for i in range(count):
        big = scaled[int(rng.integers(len(scaled)))]
        left = int(rng.integers(0, big.width - width + 1))
        top = int(rng.integers(0, big.height - height + 1))
        jobs.append((big, (left, top, left + width, top + height), directory / f"p{i:06d}.jpg"))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # Pillow encodes without the GIL
        list(pool.map(lambda job: job[0].crop(job[1]).save(job[2], quality=90), jobs))
    return [path for _, _, path in jobs], source


def _photo_sources() -> tuple[list[Image.Image], str]:
    try:
        from skimage import data
    except ImportError:
        return [Image.fromarray(_made_scene(seed)) for seed in range(5)], "made photo-like scenes"
    photos = [Image.fromarray(getattr(data, name)()) for name in PHOTO_NAMES]
    return photos, "scikit-image photos " + ", ".join(PHOTO_NAMES) + " (random 500x375 crops)"


def _made_scene(seed: int) -> np.ndarray:
    """A ``(480, 640, 3)`` uint8 scene: gradients, edges, texture and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    base = np.stack([x / 640, y / 480, (x + y) / 1120], axis=-1) * rng.uniform(80, 220, 3)
    blocks = (np.sin(x / rng.uniform(8, 40)) * np.cos(y / rng.uniform(8, 40)) > 0)[..., None]
    scene = base + blocks * rng.uniform(-60, 60, 3) + rng.normal(0, 10, base.shape)
    return np.clip(scene, 0, 255).astype(np.uint8)


def model_only(backbone: Backbone, *, batch_size: int = 512, batches: int = 20) -> float:
    """Images/s of the project's CUDA model path on random uint8 pixels on the GPU."""
    cuda = torch.device("cuda")
    module, plan = prepare_module(backbone, plan_inference(cuda))
    norm = normaliser(backbone, cuda)
    size = backbone.image_size
    pixels = torch.randint(0, 256, (batch_size, size, size, 3), dtype=torch.uint8, device=cuda)
    pixels = pixels.permute(0, 3, 1, 2)  # channels-last, as the pipeline hands it over
    with torch.inference_mode():
        for _ in range(3):
            forward_uint8(module, pixels, norm, plan)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(batches):
            forward_uint8(module, pixels, norm, plan)
        torch.cuda.synchronize()
    return batch_size * batches / (time.perf_counter() - started)


def raw_decode(encoded: Sequence[torch.Tensor], *, batch_size: int, size: int) -> float:
    """Images/s of one batched nvJPEG decode and one resize per batch, files in memory."""
    torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(encoded), batch_size):
        batch = list(encoded[start : start + batch_size])
        images = decode_jpeg(batch, mode=ImageReadMode.RGB, device="cuda")
        F.interpolate(
            torch.stack(images).float(), size=(size, size), mode="bilinear", antialias=True
        )
    torch.cuda.synchronize()
    return len(encoded) / (time.perf_counter() - started)


def decode_only(paths: Sequence[Path], *, batch_size: int, size: int) -> float:
    """Images/s of the project's device decode path without the model."""
    options = DecodeOptions(torch.device("cuda"), size, DEFAULT_MAX_PIXELS, DEFAULT_MAX_BYTES)
    threads = min(16, os.cpu_count() or 1)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in iter_device_batches(paths, options, batch_size=batch_size, read_threads=threads):
        batch.wait()
    torch.cuda.synchronize()
    return len(paths) / (time.perf_counter() - started)


def in_memory(paths: Sequence[Path]) -> list[torch.Tensor]:
    """Each file's bytes as a ``(n_bytes,)`` uint8 CPU tensor."""
    return [torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8) for p in paths]


def runs(
    sets: dict[str, Sequence[Path]],
    backbone: Backbone,
    project: Callable[[Sequence[Path]], float],
    batch_size: int,
) -> dict[str, Callable[[], float]]:
    """The timed runs by name, for ``best_of``."""
    size = backbone.image_size
    raw = {name: in_memory(paths) for name, paths in sets.items()}
    out: dict[str, Callable[[], float]] = {"gpu model only": lambda: model_only(backbone)}
    for name, paths in sets.items():
        out[f"gpu {name} raw decode"] = lambda r=raw[name]: raw_decode(
            r, batch_size=batch_size, size=size
        )
        out[f"gpu {name} decode only"] = lambda p=paths: decode_only(
            p, batch_size=batch_size, size=size
        )
        out[f"gpu {name} project"] = lambda p=paths: project(p)
    return out


def summary(rates: dict[str, float], *, photo_source: str, batch_size: int, n: int) -> dict:
    """The ``throughput.json`` fields of one GPU run (``rates`` from ``runs`` via best_of)."""
    jpeg, photo = rates["gpu jpeg project"], rates["gpu photo project"]
    model, raw = rates["gpu model only"], rates["gpu jpeg raw decode"]
    return {
        "gpu_name": torch.cuda.get_device_name(),
        "gpu_images": n,
        "gpu_batch_size": batch_size,
        "gpu_images_per_s": round(jpeg, 1),
        "gpu_photo_images_per_s": round(photo, 1),
        "gpu_model_only_images_per_s": round(model, 1),
        "gpu_raw_decode_images_per_s": round(raw, 1),
        "gpu_fraction_of_model_only": round(jpeg / model, 3),
        "gpu_fraction_of_raw_decode": round(jpeg / raw, 3),
        "gpu_decode_ceiling_images_per_s": round(rates["gpu jpeg decode only"], 1),
        "gpu_fraction_of_decode_ceiling": round(jpeg / rates["gpu jpeg decode only"], 3),
        "gpu_photo_raw_decode_images_per_s": round(rates["gpu photo raw decode"], 1),
        "gpu_photo_decode_only_images_per_s": round(rates["gpu photo decode only"], 1),
        "gpu_photo_fraction_of_raw_decode": round(photo / rates["gpu photo raw decode"], 3),
        "gpu_photo_source": photo_source,
        "gpu_torch": torch.__version__,
        "gpu_cpu_cores": os.cpu_count(),
    }
