from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.datasets import FASHION_MNIST_CLASSES
from models.embedding import ImageFailure, embed_images
from models.errors import RuntimeUnavailable
from models.exported import exported_runner, onnx_runtime_available
from models.head import TrainedHead
from models.inference import (
    CPU_BF16_SLICE,
    CPU_FP32_SLICE,
    CPU_INT8_SLICE,
    CPU_ONNX_SLICE,
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
    eager = plan_inference(cpu, exported=False)
    assert eager.precision == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert eager.runtime == "torch"
    assert plan_inference(cpu, "fp32") == InferencePlan(cpu, None, CPU_FP32_SLICE)
    assert plan_inference(cpu, "bf16") == InferencePlan(cpu, torch.bfloat16, CPU_BF16_SLICE)


def test_bf16_keeps_a_trained_heads_predictions(
    probe_data, lite0: Backbone, probe_head: TrainedHead
) -> None:
    """The stated tolerance of the fast CPU path: a head trained on fp32 embeddings predicts
    the same class for about 99% of real images, every embedding within cosine 0.99 of fp32
    (mean >= 0.997). A one-level difference in resized pixels already moves embeddings by
    about that much, so a tighter bound would measure resampling noise."""
    pixels = _resized(probe_data.test_pixels[:96])
    cpu = torch.device("cpu")
    module, _ = prepare_module(lite0, plan_inference(cpu, "fp32"))
    norm = normaliser(lite0, cpu)
    with torch.inference_mode():
        fp32 = forward_uint8(module, pixels, norm, plan_inference(cpu, "fp32")).numpy()
        bf16 = forward_uint8(module, pixels, norm, plan_inference(cpu, "bf16")).numpy()
    cosine = _cosines(fp32, bf16)
    assert cosine.min() > 0.99 and cosine.mean() > 0.997, (cosine.min(), cosine.mean())
    agree = probe_head.predict_proba(fp32).argmax(1) == probe_head.predict_proba(bf16).argmax(1)
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
    cosine = _cosines(cpu.embeddings, gpu.embeddings)
    assert cosine.min() > 0.99, cosine.min()


def test_the_cpu_runs_the_onnx_export_when_onnx_runtime_is_installed(
    png_pool: list[Path], small_lite0: Backbone
) -> None:
    assert onnx_runtime_available()  # a runtime dependency: the fast CPU path must be there
    cpu = torch.device("cpu")
    assert plan_inference(cpu) == InferencePlan(cpu, None, CPU_ONNX_SLICE, "onnxruntime")
    assert plan_inference(cpu, "fp32").runtime == "torch"  # eager, bit-comparable
    fast = embed_images(png_pool[:20], small_lite0, device=cpu, batch_size=8)
    eager = embed_images(png_pool[:20], small_lite0, device=cpu, batch_size=8, precision="fp32")
    assert (fast.runtime, fast.precision, eager.runtime) == ("onnxruntime", "fp32", "torch")
    assert fast.indices == eager.indices
    np.testing.assert_allclose(fast.embeddings, eager.embeddings, rtol=1e-3, atol=1e-3)


def test_the_onnx_export_matches_eager_fp32_on_real_images(
    probe_data, lite0: Backbone, probe_head: TrainedHead
) -> None:
    """The stated tolerance of the ONNX Runtime path: every embedding within cosine 0.9999
    of eager fp32, and a trained head predicts the same class for every image."""
    pixels = _resized(probe_data.test_pixels[:48])
    cpu = torch.device("cpu")
    norm = normaliser(lite0, cpu)
    runner, plan = prepare_module(lite0, plan_inference(cpu))
    assert plan.runtime == "onnxruntime" and runner.source.exists()
    with torch.inference_mode():
        exported = forward_uint8(runner, pixels, norm, plan).numpy()
        module, eager_plan = prepare_module(lite0, plan_inference(cpu, "fp32"))
        eager = forward_uint8(module, pixels, norm, eager_plan).numpy()
    cosine = _cosines(eager, exported)
    assert cosine.min() > 0.9999, cosine.min()
    predicted = [probe_head.predict_proba(x).argmax(1) for x in (eager, exported)]
    assert np.array_equal(*predicted)


def test_an_export_that_cannot_be_written_leaves_the_eager_path(
    small_lite0: Backbone, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    assert exported_runner(small_lite0, cache_dir=blocked) is None
    assert "ONNX Runtime path unavailable" in caplog.text
    cached = exported_runner(small_lite0, cache_dir=tmp_path / "cache")
    assert cached is not None and cached.source.parent == tmp_path / "cache"
    assert exported_runner(small_lite0, cache_dir=tmp_path / "cache") is cached
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".onnx"]  # no scraps


def test_int8_is_an_opt_in_cpu_path_within_its_stated_tolerance(
    probe_data, lite0: Backbone
) -> None:
    """models.quantized's tolerance: a head trained on int8 embeddings of real images is
    within about a point of the fp32 head (asserted: 3 points on 300 test images), and int8
    embeddings stay within cosine 0.9 of fp32 (mean >= 0.97)."""
    cpu = torch.device("cpu")
    assert plan_inference(cpu, "int8") == InferencePlan(
        cpu, None, CPU_INT8_SLICE, "onnxruntime", int8=True
    )
    assert plan_inference(cpu, "int8").precision == "int8"
    with pytest.raises(RuntimeUnavailable, match="int8 runs on the CPU"):
        plan_inference(torch.device("cuda"), "int8")
    with pytest.raises(RuntimeUnavailable, match="ONNX Runtime missing"):
        plan_inference(cpu, "int8", exported=False)
    norm = normaliser(lite0, cpu)
    embeddings = {}
    for precision in ("fp32", "int8"):
        module, plan = prepare_module(lite0, plan_inference(cpu, precision))
        with torch.inference_mode():
            embeddings[precision] = [
                forward_uint8(module, _resized(pixels), norm, plan).numpy()
                for pixels in (probe_data.train_pixels, probe_data.test_pixels)
            ]
    cosine = _cosines(embeddings["fp32"][1], embeddings["int8"][1])
    assert cosine.min() > 0.9 and cosine.mean() > 0.97, (cosine.min(), cosine.mean())
    accuracy = {}
    for precision, (train, test) in embeddings.items():
        head = train_head(
            train,
            probe_data.train_labels,
            class_names=list(FASHION_MNIST_CLASSES),
            backbone_id=lite0.backbone_id,
            epochs=100,
        )
        predicted = head.predict_proba(test).argmax(1)
        accuracy[precision] = (predicted == probe_data.test_labels).mean()
    assert abs(accuracy["int8"] - accuracy["fp32"]) <= 0.03, accuracy


@pytest.fixture(scope="module")
def probe_head(probe_data, lite0: Backbone) -> TrainedHead:
    """A head trained on the probe's eager fp32 training embeddings."""
    return train_head(
        probe_data.train_embeddings,
        probe_data.train_labels,
        class_names=list(FASHION_MNIST_CLASSES),
        backbone_id=lite0.backbone_id,
        epochs=100,
    )


def _cosines(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Row-wise cosine ``(n,)`` of two ``(n, D)`` embedding arrays, in float64."""
    a, b = reference.astype(np.float64), other.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _resized(images: np.ndarray) -> torch.Tensor:
    """``(n, 28, 28)`` uint8 grey images as ``(n, 3, 224, 224)`` uint8."""
    pixels = torch.from_numpy(images)[:, None].float()
    pixels = torch.nn.functional.interpolate(pixels, size=(224, 224), mode="bilinear")
    return pixels.round().to(torch.uint8).expand(-1, 3, -1, -1)


def test_a_failed_export_is_remembered_not_retried_on_every_call(
    small_lite0: Backbone, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "still-not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    assert exported_runner(small_lite0, cache_dir=blocked) is None
    assert exported_runner(small_lite0, cache_dir=blocked) is None
    assert caplog.text.count("ONNX Runtime path unavailable") == 1
