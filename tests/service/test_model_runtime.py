from pathlib import Path

import numpy as np

from models.datasets import load_fashion_mnist, write_pngs
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
