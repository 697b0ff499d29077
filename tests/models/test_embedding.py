from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.embedding import ImageFailure, embed_images


@pytest.fixture(scope="module")
def small_lite0() -> Backbone:
    """EfficientNet-Lite0 at 112 px: the same code path, a quarter of the CPU time."""
    return load_backbone(BackboneSpec(image_size=112))


def test_pool_with_a_corrupt_file_embeds_the_rest(
    png_pool: list[Path], small_lite0: Backbone, tmp_path: Path
) -> None:
    corrupt = tmp_path / "broken.png"
    data = png_pool[0].read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    paths = [*png_pool[:10], corrupt, *png_pool[10:]]
    calls: list[tuple[int, int]] = []
    result = embed_images(
        paths,
        small_lite0,
        device=torch.device("cpu"),
        batch_size=16,
        progress=lambda *c: calls.append(c),
    )
    assert result.embeddings.shape == (64, 1280) and result.embeddings.dtype == np.float32
    assert np.all(np.isfinite(result.embeddings))
    assert result.indices == [i for i in range(65) if i != 10]
    assert result.failures == [
        ImageFailure(10, str(corrupt), "image_corrupt", result.failures[0].reason)
    ]
    assert calls == [(16, 65), (32, 65), (48, 65), (64, 65), (65, 65)]
    assert result.seconds > 0 and result.images_per_second == pytest.approx(64 / result.seconds)


def test_batch_size_does_not_change_embeddings(png_pool: list[Path], small_lite0: Backbone) -> None:
    paths = png_pool[:12]
    one = embed_images(paths, small_lite0, device=torch.device("cpu"), batch_size=1)
    many = embed_images(paths, small_lite0, device=torch.device("cpu"), batch_size=16)
    np.testing.assert_allclose(one.embeddings, many.embeddings, rtol=1e-4, atol=1e-4)


def test_worker_processes_give_the_same_embeddings(
    png_pool: list[Path], small_lite0: Backbone
) -> None:
    paths = png_pool[:12]
    inline = embed_images(paths, small_lite0, device=torch.device("cpu"), batch_size=4)
    workers = embed_images(
        paths, small_lite0, device=torch.device("cpu"), batch_size=4, num_workers=2
    )
    assert workers.indices == inline.indices
    np.testing.assert_allclose(workers.embeddings, inline.embeddings, rtol=1e-5, atol=1e-5)


def test_all_failures_and_empty_input(small_lite0: Backbone, tmp_path: Path) -> None:
    text = tmp_path / "a.png"
    text.write_text("no image here")
    result = embed_images([text, tmp_path / "absent.jpg"], small_lite0, device=torch.device("cpu"))
    assert result.embeddings.shape == (0, 1280) and result.indices == []
    assert [failure.code for failure in result.failures] == [
        "not_an_image",
        "image_unreadable",
    ]
    empty = embed_images([], small_lite0, device=torch.device("cpu"))
    assert empty.embeddings.shape == (0, 1280) and empty.failures == []


def test_images_of_any_size_and_mode_are_embedded(small_lite0: Backbone, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(300, 200, 3), (50, 90), (112, 112, 4)]):
        path = tmp_path / f"image-{i}.png"
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)
        paths.append(path)
    result = embed_images(paths, small_lite0, device=torch.device("cpu"))
    assert result.embeddings.shape == (3, 1280) and not result.failures


def test_bad_arguments_are_rejected(small_lite0: Backbone) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        embed_images([], small_lite0, batch_size=0)


@pytest.mark.gpu  # deselected by `make test`; run with `make test-gpu` on a CUDA machine
def test_cuda_bfloat16_embeddings_match_cpu_float32(png_pool: list[Path]) -> None:
    cpu = embed_images(png_pool, load_backbone(BackboneSpec()), device=torch.device("cpu"))
    gpu = embed_images(
        png_pool,
        load_backbone(BackboneSpec()),
        device=torch.device("cuda"),
        num_workers=2,
    )
    assert gpu.indices == cpu.indices and gpu.embeddings.dtype == np.float32
    a, b = cpu.embeddings.astype(np.float64), gpu.embeddings.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.99, cosine.min()
