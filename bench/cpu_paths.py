"""Model-only comparison of the CPU inference paths, with their agreement with fp32.

Used by ``bench/throughput.py``. Inputs are real Fashion-MNIST images resized to the
backbone's size; a head is trained on fp32 embeddings of other images, and each path is
judged by the cosine of its embeddings to fp32 and by how often the head's top-1 prediction
is unchanged.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.backbone import Backbone
from models.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from models.exported import exported_runner
from models.head import TrainedHead
from models.inference import InferencePlan, forward_uint8, normaliser, plan_inference
from models.training import train_head

CPU = torch.device("cpu")
Runnable = Callable[[torch.Tensor], torch.Tensor]


def fashion_pixels(split: str, n: int, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` random images of ``split`` as ``(n, 3, size, size)`` uint8, and their labels."""
    images, labels = load_fashion_mnist(split)
    chosen = np.random.default_rng(seed).choice(len(images), n, replace=False)
    grey = torch.from_numpy(images[chosen])[:, None].float()
    pixels = F.interpolate(grey, size=(size, size), mode="bilinear").round().clamp(0, 255)
    return pixels.to(torch.uint8).expand(-1, 3, -1, -1).contiguous(), labels[chosen]


def embed(module: Runnable, backbone: Backbone, pixels: torch.Tensor, plan: InferencePlan):
    """``(embeddings (n, D), images/s)`` of ``module`` on ``pixels`` under ``plan``."""
    norm = normaliser(backbone, CPU)
    with torch.inference_mode():
        forward_uint8(module, pixels[: plan.slice_size or 1], norm, plan)  # warm-up
        started = time.perf_counter()
        out = forward_uint8(module, pixels, norm, plan).numpy()
    return out, len(pixels) / (time.perf_counter() - started)


def trained_head(backbone: Backbone, n: int = 200) -> TrainedHead:
    """A head trained on fp32 embeddings of ``n`` Fashion-MNIST training images."""
    pixels, labels = fashion_pixels("train", n, backbone.image_size, seed=0)
    module = backbone.module.to(CPU, memory_format=torch.channels_last)
    embeddings, _ = embed(module, backbone, pixels, plan_inference(CPU, "fp32"))
    names = list(FASHION_MNIST_CLASSES)
    return train_head(
        embeddings, labels.astype(np.int64), class_names=names, backbone_id=backbone.backbone_id
    )


def compare_cpu_paths(
    backbone: Backbone, head: TrainedHead, *, n: int = 128, fx_int8: bool, compile_: bool
) -> list[dict[str, object]]:
    """One row per path: images/s of the model alone and its agreement with fp32."""
    pixels, _ = fashion_pixels("test", n, backbone.image_size, seed=1)
    contiguous = copy.deepcopy(backbone.module).to(memory_format=torch.contiguous_format)
    channels_last = backbone.module.to(CPU, memory_format=torch.channels_last)
    bf16 = torch.bfloat16
    onnx = "onnxruntime"
    paths: list[tuple[str, Callable[[], Runnable], InferencePlan]] = [
        ("fp32, contiguous", lambda: contiguous, InferencePlan(CPU, None, 1)),
        ("fp32, channels-last", lambda: channels_last, InferencePlan(CPU, None, 4)),
        ("fp32, channels-last", lambda: channels_last, InferencePlan(CPU, None, 64)),
        ("bf16 autocast, channels-last", lambda: channels_last, InferencePlan(CPU, bf16, 4)),
        ("bf16 autocast, channels-last", lambda: channels_last, InferencePlan(CPU, bf16, 16)),
        ("bf16 autocast, channels-last", lambda: channels_last, InferencePlan(CPU, bf16, 64)),
        ("ONNX Runtime fp32", lambda: exported(backbone), InferencePlan(CPU, None, 4, onnx)),
        ("ONNX Runtime fp32", lambda: exported(backbone), InferencePlan(CPU, None, 16, onnx)),
        ("ONNX Runtime fp32", lambda: exported(backbone), InferencePlan(CPU, None, 64, onnx)),
        ("ONNX Runtime int8", lambda: exported(backbone, True), InferencePlan(CPU, None, 8, onnx)),
        ("ONNX Runtime int8", lambda: exported(backbone, True), InferencePlan(CPU, None, 16, onnx)),
    ]
    if fx_int8:
        paths.append(
            ("int8 static (FX, x86)", lambda: quantised(backbone), InferencePlan(CPU, None, 16))
        )
    if compile_:
        compiled = InferencePlan(CPU, bf16, 16)
        paths.append(("torch.compile + bf16", lambda: torch.compile(channels_last), compiled))
    reference, _ = embed(channels_last, backbone, pixels, InferencePlan(CPU, None, 4))
    rows = []
    for name, build, plan in paths:
        started = time.perf_counter()
        out, rate = embed(build(), backbone, pixels, plan)
        setup = time.perf_counter() - started - len(pixels) / rate
        rows.append(
            {
                "path": name,
                "slice": plan.slice_size,
                "images_per_s": round(rate, 1),
                "setup_seconds": round(setup, 1),
                **agreement(reference, out, head),
            }
        )
        print(f"  {name}, slice {plan.slice_size}: {rows[-1]}", flush=True)
    return rows


def exported(backbone: Backbone, int8: bool = False) -> Runnable:
    """The ONNX Runtime runner of ``backbone`` (exported on first use, then cached)."""
    runner = exported_runner(backbone, int8=int8)
    if runner is None:
        raise RuntimeError("onnx and onnxruntime are needed for the ONNX Runtime rows")
    return runner


def agreement(reference: np.ndarray, out: np.ndarray, head: TrainedHead) -> dict[str, float]:
    """Cosine of ``out`` to ``reference`` (both (n, D)) and the head's top-1 agreement."""
    a, b = reference.astype(np.float64), out.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    p, q = head.predict_proba(reference), head.predict_proba(out)
    return {
        "min_cosine": round(float(cosine.min()), 5),
        "mean_cosine": round(float(cosine.mean()), 5),
        "top1_agreement": round(float((p.argmax(1) == q.argmax(1)).mean()), 4),
        "max_probability_change": round(float(np.abs(p - q).max()), 4),
    }


def quantised(backbone: Backbone) -> nn.Module:
    """Static int8 (FX graph mode, x86 backend) calibrated on 64 training images."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    pixels, _ = fashion_pixels("train", 64, backbone.image_size, seed=2)
    scale, shift = normaliser(backbone, CPU)
    x = torch.addcmul(shift, pixels.float(), scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        model = copy.deepcopy(backbone.module).to(memory_format=torch.contiguous_format)
        prepared = prepare_fx(model.eval(), get_default_qconfig_mapping("x86"), (x[:2],))
        with torch.inference_mode():
            for start in range(0, len(x), 16):
                prepared(x[start : start + 16])
        return convert_fx(prepared)
