"""Frozen EfficientNet-Lite0 embeddings of benchmark images, computed once and cached.

`fashion_embeddings("train", 12000)` returns embeddings ``(n, 1280)`` float32 and labels
``(n,)`` of the first ``n`` images of a split; `fashion_embeddings("train", 60000)` and
`fashion_embeddings("test", 10000)` give whole splits. The first call embeds the images (ONNX
Runtime fp32, the product's CPU path) and writes `bench/cache/`; later calls, from any
process, read the cache. An image's embedding does not depend on the batch it
was computed in (checked bit for bit on this CPU), so a cache of the first ``m`` images of a
split serves any ``n <= m`` by slicing, and a larger cache embeds only the images past ``m``.
A file lock keeps two benchmarks from computing the same cache at once.

`mnist_embeddings("train", 60000)` and `mnist_embeddings("test", 10000)` do the same for MNIST
(from a PyPI wheel, ``bench/mnist_package.py``); `cached_embeddings` is the cache behind both,
for any loader of uint8 images and labels by split.

`embed_uint8(images)` embeds any uint8 images ``(n, H, W)`` or ``(n, H, W, 3)``, for
benchmarks that transform images first (blur, noise).
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.backbone import Backbone, BackboneSpec, load_backbone  # noqa: E402
from models.datasets import load_fashion_mnist  # noqa: E402
from models.exported import exported_runner  # noqa: E402

CACHE_DIR = ROOT / "bench" / "cache"
# How each set's cache was embedded: "lite0-onnx" by the ONNX fp32 path of embed_uint8;
# "lite0" by the eager bf16-autocast path this script used before (cosine 0.998 to fp32).
CACHE_TAGS = {"fashion": "lite0-onnx", "mnist": "lite0"}
_BACKBONE: Backbone | None = None


def backbone() -> Backbone:
    global _BACKBONE
    if _BACKBONE is None:
        _BACKBONE = load_backbone(BackboneSpec())
    return _BACKBONE


def embed_uint8(images: np.ndarray, *, batch_size: int = 16, verbose: bool = False) -> np.ndarray:
    """Embeddings ``(n, D)`` float32 of uint8 images ``(n, H, W)`` (grey) or ``(n, H, W, 3)``.

    The product's default CPU path: the backbone exported to ONNX and run in fp32 on slices
    of 16 (eager fp32 in PyTorch when ONNX Runtime is missing).
    """
    net = backbone()
    runner = exported_runner(net) or net.module
    mean = torch.tensor(net.mean).view(1, 3, 1, 1)
    std = torch.tensor(net.std).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            x = x.float().div_(255.0)
            x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
            x = F.interpolate(x, size=(net.image_size, net.image_size), mode="bilinear")
            x = x.sub_(mean).div_(std)  # in place: fresh 10 MB temporaries fragment the heap
            out.append(runner(x).float().clone())
            if verbose and (start // batch_size) % 80 == 0:
                print(f"  embedded {start + len(x)}/{len(images)}", file=sys.stderr, flush=True)
    return torch.cat(out).numpy() if out else np.zeros((0, net.embedding_dim), np.float32)


def fashion_embeddings(split: str = "train", n: int = 12000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a Fashion-MNIST split: embeddings ``(n, D)``, labels ``(n,)``."""
    return cached_embeddings("fashion", split, n, load_fashion_mnist)  # type: ignore[arg-type]


def mnist_embeddings(split: str = "train", n: int = 60000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of an MNIST split (``bench/mnist_package.py``), as above."""
    from mnist_package import load_mnist

    return cached_embeddings("mnist", split, n, load_mnist)


def cached_embeddings(
    name: str, split: str, n: int, load: Callable[[str], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels of the first ``n`` images of ``load(split)``, cached as ``name``.

    The cache files are ``bench/cache/{name}-{split}-{m}-lite0.npz``; each data set has its
    own lock file, so computing one data set's cache does not hold up readers of another,
    and a cache that already covers ``n`` is read without waiting for the lock.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    found = _read_cache(name, split, n)  # files appear whole (renamed into place): no lock
    if found is not None:
        return found
    with open(CACHE_DIR / _lock_name(name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _read_cache(name, split, n)
        if found is not None:
            return found
        cached = _cached_sizes(name, split)
        images, labels = load(split)
        if n > len(labels):
            raise ValueError(f"expected n <= {len(labels)} for the {split} split, got {n}")
        done = max(cached, default=0)
        parts = [np.load(_cache_path(name, split, done))["x"]] if done else []
        print(f"embedding {n - done} {name} {split} images (cached after this)", file=sys.stderr)
        parts.append(embed_uint8(images[done:n], verbose=True))
        vectors = np.concatenate(parts)
        path = _cache_path(name, split, n)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=vectors, y=labels[:n].astype(np.int64))
        tmp.replace(path)
    return vectors, labels[:n].astype(np.int64)


def _read_cache(name: str, split: str, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    larger = [m for m in _cached_sizes(name, split) if m >= n]
    if not larger:
        return None
    data = np.load(_cache_path(name, split, min(larger)))
    return data["x"][:n], data["y"][:n]


def _lock_name(name: str) -> str:
    # Fashion-MNIST keeps the lock file it always had, so older callers still exclude it.
    return ".lock" if name == "fashion" else f".lock-{name}"


def _cache_path(name: str, split: str, n: int) -> Path:
    return CACHE_DIR / f"{name}-{split}-{n}-{CACHE_TAGS[name]}.npz"


def _cached_sizes(name: str, split: str) -> list[int]:
    """How many leading images of ``split`` each existing cache file of ``name`` holds."""
    sizes = []
    prefix = f"{name}-{split}-"
    for path in CACHE_DIR.glob(f"{prefix}*-{CACHE_TAGS[name]}.npz"):
        count = path.name[len(prefix) :].split("-")[0]
        if count.isdigit():
            sizes.append(int(count))
    return sizes


if __name__ == "__main__":
    # python bench/fashion_features.py [fashion|mnist] [train|test] [n]
    args = sys.argv[1:]
    which = args.pop(0) if args and args[0] in ("fashion", "mnist") else "fashion"
    split = args[0] if args else "train"
    args = args[1:]
    default = {"fashion": 12000, "mnist": 60000 if split == "train" else 10000}
    count = int(args[0]) if args else default[which]
    embed = {"fashion": fashion_embeddings, "mnist": mnist_embeddings}[which]
    x, y = embed(split, count)
    print(x.shape, np.bincount(y))
