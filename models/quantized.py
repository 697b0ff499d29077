"""Static int8 quantisation of an exported backbone with ONNX Runtime (opt-in CPU path).

Weights are quantised per channel (int8) and activations per tensor (uint8), with ranges
calibrated on a fixed, seeded set of smooth random images rather than on anyone's data: the
quantised model is the same on every machine and for every pool, so embeddings stay
comparable. On a 2-core AVX-512 VNNI EPYC, EfficientNet-Lite0 runs about 3x faster than its
fp32 export (docs/benchmarks.md). Needs ``onnx`` and ``onnxruntime``.

The recipe keeps the arithmetic exact on every x86-64 CPU. Without VNNI, ONNX Runtime's
uint8 x int8 matrix kernels add pairs of products in saturating 16-bit lanes
(``vpmaddubsw``): with 8-bit weights a pair reaches 2 * 255 * 128 > 32767 and is clipped, so
the same model gave embeddings within cosine 0.67 of fp32 on an AVX2 CPU and 0.94 on a VNNI
one. Matrix-kernel weights therefore use 7 bits (``reduce_range``; a pair stays under 32640),
depthwise convolutions, whose kernel widens to 32 bits before adding, keep 8, and the stem
and last convolution stay in fp32. The embeddings are then identical bit for bit on AVX2 and
on AVX-512 VNNI, and the runtime checks the agreement once per session
(``models.exported``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CALIBRATION_IMAGES", "INT8_RECIPE", "calibration_inputs", "quantise_int8"]

# Names the quantisation recipe in cached model files and embedding ids: int8 embeddings of
# another recipe are another kind of embedding.
INT8_RECIPE = "int8r7"
CALIBRATION_IMAGES = 64
_SCALES = (4, 8, 16, 32)  # side of the random field each image is upsampled from
_CALIBRATION_SEED = 0


def calibration_inputs(
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    n: int = CALIBRATION_IMAGES,
    *,
    seed: int = _CALIBRATION_SEED,
) -> np.ndarray:
    """``(n, 3, size, size)`` float32 normalised inputs: smooth random images, half of them grey.

    Each is a random field of 4 to 32 pixels a side, upsampled bicubically: flat regions,
    edges and textures at several scales, the statistics that set a convolution's ranges.
    Another ``seed`` gives images the quantisation never saw (the runtime's self-check).
    """
    if n < 1 or size < 8:
        raise ValueError(f"expected n >= 1 and size >= 8, got {n}, {size}")
    generator = torch.Generator().manual_seed(seed)
    images = []
    for i in range(n):
        side = _SCALES[i % len(_SCALES)]
        field = torch.rand(1, 3, side, side, generator=generator)
        image = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=False)
        if i % 2:
            image = image.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        images.append(image.clamp(0, 1))
    pixels = (torch.cat(images) * 255).round() / 255
    normalised = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return normalised.numpy().astype(np.float32)


def quantise_int8(source: Path, target: str | Path, inputs: np.ndarray, input_name: str) -> None:
    """Write the int8 (QDQ) model of the fp32 ONNX model ``source`` to ``target``.

    ``inputs``: calibration batches' stacked inputs ``(n, 3, H, W)`` for the input named
    ``input_name``. The recipe is the module docstring's.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(np.array_split(inputs, max(1, len(inputs) // 8)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="quantise-") as folder:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        kept_fp32, depthwise_weights = _layout(prepared, input_name)
        quantize_static(
            str(prepared),
            str(target),
            Batches(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            nodes_to_exclude=kept_fp32,
            extra_options={
                "TensorQuantOverrides": {
                    name: [{"reduce_range": False, "axis": 0}] for name in depthwise_weights
                }
            },
        )


def _layout(model_path: Path, input_name: str) -> tuple[list[str], list[str]]:
    """The convolutions kept in fp32 (those reading the input, and the last one) and the
    weight names of the depthwise convolutions, in a topologically sorted model."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    if not convs:
        raise ValueError(f"{model_path.name} has no convolution to quantise")
    weights = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    kept = [node.name for node in convs if input_name in node.input]
    kept += [] if convs[-1].name in kept else [convs[-1].name]
    depthwise = [
        node.input[1]
        for node in convs
        if _group(node) > 1 and weights.get(node.input[1], (0, 0))[1] == 1
    ]
    return kept, depthwise


def _group(node: object) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)  # type: ignore[attr-defined]
