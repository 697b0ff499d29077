"""The embedding path the service takes on each device, planned without running anything."""

from __future__ import annotations

import pytest
import torch

from models.errors import RuntimeUnavailable
from models.inference import plan_inference
from service.learning.embedding_plan import plan_embedding

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def test_cuda_takes_the_device_decoder_in_bf16_with_large_batches_and_runs() -> None:
    plan = plan_embedding(CUDA)  # a plan only: no CUDA call, so it runs on any machine
    assert (plan.device, plan.decoder, plan.device_decode) == (CUDA, "device", True)
    assert (plan.precision, plan.runtime) == ("bf16", "torch")
    assert plan.batch_size == 256 and plan.chunk_size == 16 * plan.batch_size
    index = plan_embedding(torch.device("cuda:1"), "fp32", batch_size=100)
    assert (index.decoder, index.precision, index.batch_size, index.chunk_size) == (
        "device",
        "fp32",
        100,
        1600,
    )


def test_the_cpu_decodes_on_the_cpu_with_the_model_packages_precision() -> None:
    for exported in (True, False):
        plan = plan_embedding(CPU, exported=exported)
        reference = plan_inference(CPU, exported=exported)
        assert (plan.precision, plan.runtime) == (reference.precision, reference.runtime)
        assert (plan.decoder, plan.batch_size, plan.chunk_size) == ("cpu", 64, 512)
    assert plan_embedding(CPU, exported=True).runtime == "onnxruntime"
    assert plan_embedding(CPU, batch_size=1024).chunk_size == 1024  # a run holds a batch


def test_a_configured_decoder_wins_over_the_devices_default() -> None:
    assert plan_embedding(CUDA, decoder="cpu").decoder == "cpu"
    assert plan_embedding(CPU, decoder="device").device_decode


def test_impossible_plans_are_refused_before_any_work() -> None:
    with pytest.raises(RuntimeUnavailable):
        plan_embedding(CUDA, "int8")
    with pytest.raises(ValueError, match="batch_size"):
        plan_embedding(CPU, batch_size=0)
    with pytest.raises(ValueError, match="decoder"):
        plan_embedding(CPU, decoder="gpu")  # type: ignore[arg-type]
