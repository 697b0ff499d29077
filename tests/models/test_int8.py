"""The int8 recipe computes the same on every x86-64 CPU, and a CPU where it cannot is refused.

ONNX Runtime's uint8 x int8 kernels without VNNI add pairs of products in saturating 16-bit
lanes; these tests hold the quantised model to the bound that keeps every such pair exact,
and check that a session whose int8 embeddings stray from fp32 is refused, not used.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from models.backbone import Backbone, BackboneSpec, load_backbone
from models.errors import RuntimeUnavailable
from models.exported import (
    INT8_CHECK_MIN_COSINE,
    check_int8_agreement,
    default_cache_dir,
    exported_runner,
)
from models.inference import plan_inference, prepare_module
from models.quantized import INT8_RECIPE

U8_MAX, I16_MAX = 255, 32767


@pytest.fixture(scope="module")
def int8_model(lite0: Backbone) -> onnx.ModelProto:
    runner = exported_runner(lite0, int8=True)
    assert runner is not None and INT8_RECIPE in runner.source.name
    return onnx.load(str(runner.source))


def _conv_weights(model: onnx.ModelProto) -> dict[str, tuple[np.ndarray | None, int]]:
    """Each convolution's quantised weights (None when kept in float) and its group."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    dequantised = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        source = dequantised.get(node.input[1])
        weights = numpy_helper.to_array(initializers[source]) if source else None
        convs[node.name] = (weights, group)
    return convs


def test_matrix_kernel_weights_keep_every_product_pair_inside_16_bits(int8_model) -> None:
    convs = _conv_weights(int8_model)
    names = list(convs)
    assert convs[names[0]][0] is None and convs[names[-1]][0] is None  # stem, last: float
    matrix = [w for w, group in convs.values() if w is not None and group == 1]
    depthwise = [w for w, group in convs.values() if w is not None and group > 1]
    assert len(matrix) >= 30 and len(depthwise) >= 10
    for weights in matrix:
        assert weights.dtype == np.int8
        # vpmaddubsw adds two uint8 x int8 products in a saturating int16 lane
        assert 2 * U8_MAX * np.abs(weights.astype(np.int32)).max() <= I16_MAX
    assert max(np.abs(w.astype(np.int32)).max() for w in depthwise) > 64  # 8 bits kept


def test_the_recipe_passes_its_own_check_and_names_its_files(lite0: Backbone) -> None:
    cpu = torch.device("cpu")
    int8, _ = prepare_module(lite0, plan_inference(cpu, "int8"))
    fp32, _ = prepare_module(lite0, plan_inference(cpu))
    assert check_int8_agreement(int8, fp32, lite0) >= INT8_CHECK_MIN_COSINE
    assert int8.source.parent == fp32.source.parent == default_cache_dir()
    assert int8.source.name.endswith(f"-{INT8_RECIPE}.onnx")


def test_a_session_whose_int8_strays_from_fp32_is_refused_every_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A model file standing in for kernels that compute something else (its weights
    scrambled) is refused with runtime_unavailable, on the first call and the next."""
    small = load_backbone(BackboneSpec(image_size=96))
    fp32 = exported_runner(small, cache_dir=tmp_path)
    assert fp32 is not None
    model = onnx.load(str(fp32.source))
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.ndim == 4 and values.shape[1] > 1:  # matrix-kernel weights
            tensor.CopyFrom(numpy_helper.from_array(rng.permutation(values), tensor.name))
    onnx.save(model, str(fp32.source.with_name(fp32.source.stem + f"-{INT8_RECIPE}.onnx")))
    for _ in range(2):
        with pytest.raises(RuntimeUnavailable, match="mean cosine") as refused:
            exported_runner(small, int8=True, cache_dir=tmp_path)
        assert refused.value.code == "runtime_unavailable"
    assert caplog.text.count("int8 path refused") == 1
