"""How a frozen backbone runs on a device: runtime, numeric precision, layout, micro-batches.

On the CPU the fastest path that keeps the predictions is ONNX Runtime in fp32 on slices of
16 images, when ``onnx`` and ``onnxruntime`` are installed (``models.exported``;
EfficientNet-Lite0 at 224 px on a quiet 2-core AVX-512 BF16 EPYC: about 170 images/s,
embeddings within cosine 0.99999 of eager fp32). Without them, bf16 autocast on channels-last
slices of 4 where the CPU computes bf16 natively (about 150 images/s; 99% top-1 agreement with
fp32, embedding cosine >= 0.995), else eager fp32 on slices of 4. See docs/benchmarks.md.
Faster still, and opt-in: ``precision="int8"`` runs the static int8 quantisation of the
export (about 2x its fp32 speed, within the tolerance stated in ``models.quantized``).
CUDA runs bf16 on whole batches. ``precision="fp32"`` forces eager full precision anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from models.backbone import Backbone
from models.errors import RuntimeUnavailable
from models.exported import exported_runner, onnx_runtime_available

Precision = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
Runtime = Literal["torch", "onnxruntime"]
CPU_FP32_SLICE = 4
CPU_BF16_SLICE = 4
CPU_ONNX_SLICE = 16
CPU_INT8_SLICE = 16


@dataclass(frozen=True)
class InferencePlan:
    """Where and how the model runs: ``dtype`` is the autocast type (None: plain fp32).

    ``slice_size`` caps the images per forward pass (None: the whole batch). ``runtime``
    ``"onnxruntime"`` runs the exported backbone (``models.exported``): in fp32, or its
    static int8 quantisation when ``int8``.
    """

    device: torch.device
    dtype: torch.dtype | None
    slice_size: int | None
    runtime: Runtime = "torch"
    int8: bool = False

    @property
    def precision(self) -> str:
        if self.int8:
            return "int8"
        return "fp32" if self.dtype is None else "bf16"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), not by emulation."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def plan_inference(
    device: torch.device, precision: Precision = "auto", *, exported: bool | None = None
) -> InferencePlan:
    """The plan for ``device``.

    ``"auto"`` is ONNX Runtime fp32 on the CPU when ``exported`` (default: when ``onnx`` and
    ``onnxruntime`` are installed), else bf16 on CUDA and on CPUs with native bf16, else
    fp32. ``"fp32"`` forces eager full precision (bit-comparable to earlier runs); ``"bf16"``
    forces bfloat16 autocast; ``"int8"`` (CPU only, opt-in) runs the static int8 export,
    within the tolerance stated in ``models.quantized``. Raises ValueError for another
    precision name and :class:`RuntimeUnavailable` for int8 off the CPU or without ONNX Runtime.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"expected precision in {PRECISIONS}, got {precision!r}")
    available = onnx_runtime_available() if exported is None else exported
    if precision == "int8":
        if device.type != "cpu" or not available:
            raise RuntimeUnavailable(
                f"int8 runs on the CPU through ONNX Runtime (onnx and onnxruntime installed); "
                f"device {device.type}, ONNX Runtime {'present' if available else 'missing'}"
            )
        return InferencePlan(device, None, CPU_INT8_SLICE, "onnxruntime", int8=True)
    if precision == "auto" and device.type == "cpu" and available:
        return InferencePlan(device, None, CPU_ONNX_SLICE, "onnxruntime")
    if precision == "auto":
        fast = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        precision = "bf16" if fast else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else None
    if device.type != "cpu":
        return InferencePlan(device, dtype, None)
    return InferencePlan(device, dtype, CPU_BF16_SLICE if dtype else CPU_FP32_SLICE)


def prepare_module(
    backbone: Backbone, plan: InferencePlan
) -> tuple[Callable[[torch.Tensor], torch.Tensor], InferencePlan]:
    """What runs the plan, and the plan it runs (eager fp32 when the export is unavailable).

    Eager: the backbone's module, moved to the plan's device in channels-last layout (in
    place). ONNX Runtime: the cached export's runner (``models.exported``).
    """
    if plan.runtime == "onnxruntime":
        runner = exported_runner(backbone, int8=plan.int8)
        if runner is not None:
            return runner, plan
        if plan.int8:  # embeddings must not silently change kind
            raise RuntimeUnavailable(f"the int8 export of {backbone.backbone_id} failed (logged)")
        plan = plan_inference(plan.device, "auto", exported=False)
    return backbone.module.to(plan.device, memory_format=torch.channels_last), plan


def normaliser(backbone: Backbone, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)``, each (1, 3, 1, 1), so that ``uint8 * scale + shift`` is the input."""
    mean = torch.tensor(backbone.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (-mean / std).to(device)


def forward_uint8(
    module: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    norm: tuple[torch.Tensor, torch.Tensor],
    plan: InferencePlan,
) -> torch.Tensor:
    """Embeddings ``(n, D)`` float32 on the plan's device of ``pixels: (n, 3, H, W)`` uint8.

    ``pixels`` may live on any device; channels-last memory (an NHWC tensor permuted to
    NCHW) is kept as is.
    """
    if pixels.ndim != 4 or pixels.shape[1] != 3 or pixels.dtype != torch.uint8:
        raise ValueError(f"expected uint8 pixels (n, 3, H, W), got {pixels.dtype} {pixels.shape}")
    parts = pixels.split(plan.slice_size) if plan.slice_size else (pixels,)
    outputs = [_forward_part(module, part, norm, plan) for part in parts]
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def _forward_part(
    module: Callable[[torch.Tensor], torch.Tensor],
    pixels: torch.Tensor,
    norm: tuple[torch.Tensor, torch.Tensor],
    plan: InferencePlan,
) -> torch.Tensor:
    x = pixels.to(plan.device, non_blocking=True).float()
    x = torch.addcmul(norm[1], x, norm[0])
    if plan.runtime == "onnxruntime":
        return module(x.contiguous())
    x = x.contiguous(memory_format=torch.channels_last)
    if plan.dtype is None:
        return module(x).float()
    with torch.autocast(plan.device.type, dtype=plan.dtype):
        return module(x).float()
