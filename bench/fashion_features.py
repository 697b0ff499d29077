"""Frozen EfficientNet-Lite0 embeddings of Fashion-MNIST, computed once and cached for benchmarks.

`fashion_embeddings("train", 12000)` returns embeddings ``(n, 1280)`` float32 and labels
``(n,)`` of the first ``n`` images of a split; `fashion_embeddings("train", 60000)` and
`fashion_embeddings("test", 10000)` give whole splits. The first call embeds the images (bf16
autocast, channels-last, on the CPU when there is no GPU) and writes `bench/cache/`; later
calls, from any process, read the cache. An image's embedding does not depend on the batch it
was computed in (checked bit for bit on this CPU), so a cache of the first ``m`` images of a
split serves any ``n <= m`` by slicing, and a larger cache embeds only the images past ``m``.
A file lock keeps two benchmarks from computing the same cache at once.

`embed_uint8(images)` embeds any uint8 images ``(n, H, W)`` or ``(n, H, W, 3)``, for
benchmarks that transform images first (blur, noise).
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.backbone import Backbone, BackboneSpec, load_backbone  # noqa: E402
from models.datasets import load_fashion_mnist  # noqa: E402

CACHE_DIR = ROOT / "bench" / "cache"
_BACKBONE: Backbone | None = None


def backbone() -> Backbone:
    global _BACKBONE
    if _BACKBONE is None:
        _BACKBONE = load_backbone(BackboneSpec())
        _BACKBONE.module.to(memory_format=torch.channels_last)
    return _BACKBONE


def embed_uint8(images: np.ndarray, *, batch_size: int = 64, verbose: bool = False) -> np.ndarray:
    """Embeddings ``(n, D)`` float32 of uint8 images ``(n, H, W)`` (grey) or ``(n, H, W, 3)``."""
    net = backbone()
    mean = torch.tensor(net.mean).view(1, 3, 1, 1)
    std = torch.tensor(net.std).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            x = x.float().div_(255.0)
            x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            x = F.interpolate(x, size=(net.image_size, net.image_size), mode="bilinear")
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out.append(net.module(x).float())
            if verbose and (start // batch_size) % 20 == 0:
                print(f"  embedded {start + len(x)}/{len(images)}", file=sys.stderr, flush=True)
    return torch.cat(out).numpy() if out else np.zeros((0, net.embedding_dim), np.float32)


def fashion_embeddings(split: str = "train", n: int = 12000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a Fashion-MNIST split: embeddings ``(n, D)``, labels ``(n,)``."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _cached_sizes(split)
        larger = [m for m in cached if m >= n]
        if larger:
            data = np.load(_cache_path(split, min(larger)))
            return data["x"][:n], data["y"][:n]
        images, labels = load_fashion_mnist(split)  # type: ignore[arg-type]
        if n > len(labels):
            raise ValueError(f"expected n <= {len(labels)} for the {split} split, got {n}")
        done = max(cached, default=0)
        parts = [np.load(_cache_path(split, done))["x"]] if done else []
        print(
            f"embedding {n - done} Fashion-MNIST {split} images (cached after this)",
            file=sys.stderr,
        )
        parts.append(embed_uint8(images[done:n], verbose=True))
        vectors = np.concatenate(parts)
        path = _cache_path(split, n)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=vectors, y=labels[:n].astype(np.int64))
        tmp.replace(path)
    return vectors, labels[:n].astype(np.int64)


def _cache_path(split: str, n: int) -> Path:
    return CACHE_DIR / f"fashion-{split}-{n}-lite0.npz"


def _cached_sizes(split: str) -> list[int]:
    """How many leading images of ``split`` each existing cache file holds."""
    sizes = []
    for path in CACHE_DIR.glob(f"fashion-{split}-*-lite0.npz"):
        count = path.name.split("-")[2]
        if count.isdigit():
            sizes.append(int(count))
    return sizes


if __name__ == "__main__":
    x, y = fashion_embeddings(sys.argv[1] if len(sys.argv) > 1 else "train")
    print(x.shape, np.bincount(y))
