"""How the service embeds images on its device: decoder, precision, runtime and batching.

On CUDA, JPEGs are decoded on the GPU while the model runs (``models.gpu_decode``, reached
through ``models.embed_images``), in batches of 256 (the batch of the GPU throughput
figures in docs/benchmarks.md) and runs of 16 batches between two commits, so that the
decoder's read-ahead stays full. Elsewhere, images are decoded on the CPU in batches of 64
and runs of 512. The precision and runtime are the model package's choice
(``models.inference.plan_inference``), read here so that the service can report its path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from models.inference import Precision, plan_inference

Decoder = Literal["device", "cpu"]
DecoderChoice = Literal["auto", "device", "cpu"]
CPU_BATCH, CPU_CHUNK = 64, 512
CUDA_BATCH, CUDA_CHUNK_BATCHES = 256, 16


@dataclass(frozen=True)
class EmbeddingPlan:
    """One embedding path.

    ``precision`` is ``fp32``, ``bf16`` or ``int8``; ``runtime`` is ``torch`` or
    ``onnxruntime``; ``decoder`` says where images are decoded (``device``: the device
    pipeline, JPEGs decoded on ``device``). ``chunk_size`` images are embedded between two
    commits of the pool's embedding store.
    """

    device: torch.device
    precision: str
    runtime: str
    decoder: Decoder
    batch_size: int
    chunk_size: int

    @property
    def device_decode(self) -> bool:
        return self.decoder == "device"


def plan_embedding(
    device: torch.device,
    precision: Precision = "auto",
    *,
    decoder: DecoderChoice = "auto",
    batch_size: int | None = None,
    exported: bool | None = None,
) -> EmbeddingPlan:
    """The path the service takes on ``device``; runs nothing and touches no device.

    ``decoder`` ``"auto"`` is the device pipeline on CUDA and the CPU decoder elsewhere.
    ``batch_size`` None is the device's default (256 on CUDA, 64 elsewhere). ``exported``
    is passed to ``plan_inference`` (None: whether ONNX Runtime is installed). Raises
    ValueError for a batch size below 1 or an unknown decoder, and ``RuntimeUnavailable``
    for a precision that cannot run on ``device`` (int8 off the CPU).
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"expected batch_size >= 1 or None, got {batch_size}")
    if decoder not in ("auto", "device", "cpu"):
        raise ValueError(f"expected decoder 'auto', 'device' or 'cpu', got {decoder!r}")
    inference = plan_inference(device, precision, exported=exported)
    cuda = device.type == "cuda"
    chosen: Decoder = ("device" if cuda else "cpu") if decoder == "auto" else decoder
    if cuda:
        batch = batch_size or CUDA_BATCH
        chunk = batch * CUDA_CHUNK_BATCHES
    else:
        batch = batch_size or CPU_BATCH
        chunk = max(CPU_CHUNK, batch)
    return EmbeddingPlan(device, inference.precision, inference.runtime, chosen, batch, chunk)
