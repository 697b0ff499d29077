from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.datasets import FASHION_MNIST_CLASSES
from models.embedding import ImageFailure, embed_images
from models.inference import (
    CPU_BF16_SLICE,
    CPU_FP32_SLICE,
    InferencePlan,
    cpu_has_fast_bf16,
    forward_uint8,
    normaliser,
    plan_inference,
    prepare_module,
)
from models.training import train_head


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
    cpu = torch.device("cpu")
    one = embed_images(paths, small_lite0, device=cpu, batch_size=1, precision="fp32")
    many = embed_images(paths, small_lite0, device=cpu, batch_size=16, precision="fp32")
    assert one.precision == "fp32"
    np.testing.assert_allclose(one.embeddings, many.embeddings, rtol=1e-4, atol=1e-4)


def test_worker_processes_give_the_same_embeddings(
    png_pool: list[Path], small_lite0: Backbone
) -> None:
    paths = png_pool[:12]
    inline = embed_images(paths, small_lite0, device=torch.device("cpu"), batch_size=4)
    workers = embed_images(
        paths, small_lite0, device=torch.device("cpu"), batch_size=4, num_workers=2
    )
    assert inline.precision == workers.precision
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
    with pytest.raises(ValueError, match="precision"):
        embed_images([], small_lite0, precision="fp16")  # type: ignore[arg-type]


def test_the_cpu_runs_bf16_only_where_it_computes_bf16_natively() -> None:
    cpu = torch.device("cpu")
    auto = plan_inference(cpu)
    assert auto.precision == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert plan_inference(cpu, "fp32") == InferencePlan(cpu, None, CPU_FP32_SLICE)
    assert plan_inference(cpu, "bf16") == InferencePlan(cpu, torch.bfloat16, CPU_BF16_SLICE)


def test_bf16_keeps_a_trained_heads_predictions(probe_data, lite0: Backbone) -> None:
    """The stated tolerance of the fast CPU path: a head trained on fp32 embeddings predicts
    the same class for about 99% of real images, every embedding within cosine 0.99 of fp32
    (mean >= 0.997). A one-level difference in resized pixels already moves embeddings by
    about that much, so a tighter bound would measure resampling noise."""
    images = probe_data.test_pixels[:96]
    pixels = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1)
    pixels = torch.nn.functional.interpolate(pixels.float(), size=(224, 224), mode="bilinear")
    pixels = pixels.round().to(torch.uint8)
    cpu = torch.device("cpu")
    module, norm = prepare_module(lite0, plan_inference(cpu)), normaliser(lite0, cpu)
    with torch.inference_mode():
        fp32 = forward_uint8(module, pixels, norm, plan_inference(cpu, "fp32")).numpy()
        bf16 = forward_uint8(module, pixels, norm, plan_inference(cpu, "bf16")).numpy()
    a, b = fp32.astype(np.float64), bf16.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.99 and cosine.mean() > 0.997, (cosine.min(), cosine.mean())
    head = train_head(
        probe_data.train_embeddings,
        probe_data.train_labels,
        class_names=list(FASHION_MNIST_CLASSES),
        backbone_id=lite0.backbone_id,
        epochs=100,
    )
    agree = head.predict_proba(fp32).argmax(1) == head.predict_proba(bf16).argmax(1)
    assert agree.mean() >= 0.97, agree.mean()  # 96 images: room for two flips


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
