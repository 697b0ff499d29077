from pathlib import Path

import numpy as np
import pytest

from models.datasets import load_fashion_mnist, write_pngs
from service.core.metrics import EMBEDDING_LABELS as LABELS
from service.core.metrics import REGISTRY
from service.core.settings import ModelSettings
from service.learning.runtime import ModelRuntime


def runtime(tmp_path: Path, precision: str) -> ModelRuntime:
    settings = ModelSettings(image_size=64, precision=precision)  # type: ignore[arg-type]
    return ModelRuntime(settings, max_pixels=10**7, embedding_dir=tmp_path / precision)


def test_int8_embeddings_get_their_own_backbone_id_and_the_default_keeps_fp32(
    tmp_path: Path,
) -> None:
    images, _ = load_fashion_mnist("test")
    paths = write_pngs(images[:6], tmp_path / "pool", names=[f"p{i}" for i in range(6)])
    default, int8 = runtime(tmp_path, "auto"), runtime(tmp_path, "int8")
    assert int8.backbone_id == default.backbone_id + "+int8r7"
    fast, exact = int8.embed(paths), default.embed(paths)
    assert (fast.precision, fast.runtime) == ("int8", "onnxruntime")
    assert (exact.precision, exact.runtime) == ("fp32", "onnxruntime")
    assert fast.indices == exact.indices == list(range(6))
    assert not np.allclose(fast.embeddings, exact.embeddings, atol=1e-4)  # a different kind


def _embedded(labels: tuple[str, ...]) -> tuple[float, float]:
    found = [
        REGISTRY.get_sample_value(metric, dict(zip(LABELS, labels, strict=True))) or 0.0
        for metric in ("activelabel_images_embedded_total", "activelabel_embedding_seconds_total")
    ]
    return found[0], found[1]


def test_runs_take_the_planned_decoder_and_are_counted_by_their_path(tmp_path: Path) -> None:
    images, _ = load_fashion_mnist("test")
    paths = write_pngs(images[:10], tmp_path / "pool", names=[f"p{i}" for i in range(10)])
    paths.append(tmp_path / "pool" / "missing.png")  # a failure: not counted as embedded
    runs = {}
    for decoder in ("cpu", "device"):  # the device pipeline runs on the CPU too
        settings = ModelSettings(image_size=64, device="cpu", decoder=decoder)  # type: ignore[arg-type]
        model = ModelRuntime(settings, max_pixels=10**7, embedding_dir=tmp_path / decoder)
        plan = model.plan
        labels = (str(plan.device), plan.precision, plan.runtime, plan.decoder)
        images_before, seconds_before = _embedded(labels)
        runs[decoder] = result = model.embed(paths)
        assert result.decoder == decoder and (result.precision, result.runtime) == labels[1:3]
        images_after, seconds_after = _embedded(labels)
        assert images_after - images_before == len(result.indices) == 10
        assert seconds_after - seconds_before == pytest.approx(result.seconds)
        rate = REGISTRY.get_sample_value(
            "activelabel_embedding_images_per_second", dict(zip(LABELS, labels, strict=True))
        )
        assert rate is not None and rate > 0
    on_cpu, on_device = runs["cpu"], runs["device"]
    assert on_cpu.indices == on_device.indices and len(on_device.failures) == 1
    cosine = np.sum(on_cpu.embeddings * on_device.embeddings, axis=1) / (
        np.linalg.norm(on_cpu.embeddings, axis=1) * np.linalg.norm(on_device.embeddings, axis=1)
    )
    assert cosine.min() > 0.999  # PNGs take the same Pillow decode on both paths
