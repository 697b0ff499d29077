"""A frozen backbone exported to ONNX and run by ONNX Runtime: the fastest CPU path.

On a 2-core AVX-512 EPYC, EfficientNet-Lite0 at 224 px runs about 1.7x faster under ONNX
Runtime (fp32, batches of 16) than under eager PyTorch with bf16 autocast, and its embeddings
match eager fp32 to a cosine of 0.99999 (see docs/benchmarks.md). Its static int8
quantisation (``models.quantized``) is the opt-in faster path. The export runs once per
(backbone, torch version) and is cached on disk; sessions are kept per process. An int8
session is first checked against the fp32 one on images the quantisation never saw: where
this CPU's int8 kernels stray past the stated tolerance, it is refused with
``runtime_unavailable`` instead of handing out wrong embeddings.

``onnx`` and ``onnxruntime`` are optional here: without them (or when an architecture does not
export) :func:`exported_runner` returns None and the caller runs the module in PyTorch, so
``models`` still imports with torch, torchvision, numpy and pillow alone.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.backbone import Backbone
from models.errors import RuntimeUnavailable
from models.quantized import INT8_RECIPE, calibration_inputs, quantise_int8

__all__ = [
    "INT8_CHECK_MIN_COSINE",
    "OnnxRunner",
    "check_int8_agreement",
    "default_cache_dir",
    "exported_runner",
    "onnx_runtime_available",
]

log = logging.getLogger(__name__)
_OPSET = 17
_INPUT, _OUTPUT = "pixels", "embeddings"
# The int8 self-check: the mean cosine to fp32 over _CHECK_IMAGES unseen synthetic images.
# The recipe gives 0.953 on every CPU; saturating 8-bit kernels gave 0.835 on AVX2 (and
# 0.85 on real images, where the recipe's tolerance is 0.97).
INT8_CHECK_MIN_COSINE = 0.92
_CHECK_IMAGES, _CHECK_SEED = 16, 1
# Runners by (model file, threads); None remembers a failed export, so it is not retried
# (and logged) on every call in this process; a refused int8 session is raised again.
_SESSIONS: dict[tuple[Path, int], OnnxRunner | RuntimeUnavailable | None] = {}
_LOCK = threading.Lock()


class OnnxRunner:
    """Calls an ONNX Runtime session like the module it was exported from.

    ``runner(x)`` maps normalised ``(n, 3, H, W)`` float32 CPU tensors to ``(n, D)`` float32.
    A session may be called from several threads at once.
    """

    def __init__(self, session: Any, source: Path) -> None:
        self.session = session
        self.source = source

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([_OUTPUT], {_INPUT: array})[0])


@functools.cache
def onnx_runtime_available() -> bool:
    """Whether both the exporter's ``onnx`` package and ``onnxruntime`` are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/activelabel/onnx`` (``~/.cache`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "activelabel" / "onnx"


def exported_runner(
    backbone: Backbone,
    *,
    int8: bool = False,
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> OnnxRunner | None:
    """An ONNX Runtime runner for ``backbone``, exporting it on first use; None if unavailable.

    ``int8`` runs its static int8 quantisation (``models.quantized``) instead of fp32. Each
    model is written atomically to ``cache_dir`` (default :func:`default_cache_dir`) under a
    name made of the backbone's id, the torch version and the int8 recipe. ``threads``
    defaults to torch's intra-op thread count. Any export or load failure is logged once and
    gives None; an int8 session that fails :func:`check_int8_agreement` raises
    :class:`RuntimeUnavailable`, on this call and every later one.
    """
    if not onnx_runtime_available():
        return None
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    stem = f"{_safe(backbone.backbone_id)}-torch{_safe(torch.__version__)}"
    fp32, path = folder / f"{stem}.onnx", folder / f"{stem}{f'-{INT8_RECIPE}' if int8 else ''}.onnx"
    key = (path, threads or torch.get_num_threads())
    with _LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = _load(backbone, fp32, path, key[1])
        found = _SESSIONS[key]
    if isinstance(found, RuntimeUnavailable):
        raise found
    return found


def _load(
    backbone: Backbone, fp32: Path, path: Path, threads: int
) -> OnnxRunner | RuntimeUnavailable | None:
    """Export (and quantise) what is missing, then open the session; int8 is checked first."""
    try:
        if not fp32.exists():
            _atomically(fp32, lambda scratch: _export(backbone, scratch))
        if path != fp32 and not path.exists():
            inputs = calibration_inputs(backbone.image_size, backbone.mean, backbone.std)
            _atomically(path, lambda scratch: quantise_int8(fp32, scratch, inputs, _INPUT))
        runner = OnnxRunner(_session(path, threads), path)
        if path != fp32:
            check_int8_agreement(runner, OnnxRunner(_session(fp32, threads), fp32), backbone)
        return runner
    except RuntimeUnavailable as err:
        log.error("int8 path refused for %s: %s", backbone.backbone_id, err)
        return err
    except Exception as err:  # an unexportable architecture, a full disk, a bad file
        log.warning("ONNX Runtime path unavailable for %s: %s", backbone.backbone_id, err)
        return None


def check_int8_agreement(
    int8: Callable[[torch.Tensor], torch.Tensor],
    fp32: Callable[[torch.Tensor], torch.Tensor],
    backbone: Backbone,
    *,
    min_cosine: float = INT8_CHECK_MIN_COSINE,
) -> float:
    """The mean cosine between ``int8`` and ``fp32`` embeddings of unseen synthetic images.

    Raises :class:`RuntimeUnavailable` when it is under ``min_cosine``: this CPU's int8
    kernels do not compute what the recipe was checked to compute.
    """
    inputs = torch.from_numpy(
        calibration_inputs(
            backbone.image_size, backbone.mean, backbone.std, _CHECK_IMAGES, seed=_CHECK_SEED
        )
    )
    a, b = int8(inputs).double(), fp32(inputs).double()
    mean = float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())
    if not mean >= min_cosine:
        raise RuntimeUnavailable(
            f"int8 embeddings on this CPU are within a mean cosine of {mean:.3f} of fp32, "
            f"under the {min_cosine} the int8 recipe meets; use precision auto or fp32 here"
        )
    return mean


def _atomically(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write`` on a scratch file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        write(scratch)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


def _export(backbone: Backbone, target: str) -> None:
    """Export ``backbone.module`` to ``target`` with a dynamic batch axis."""
    module = copy.deepcopy(backbone.module).to("cpu", memory_format=torch.contiguous_format)
    example = torch.zeros(1, 3, backbone.image_size, backbone.image_size)
    # No catch_warnings here: warning filters are process-wide, and restoring them from this
    # (job) thread would undo another thread's. The exporter's notices are printed once.
    with torch.inference_mode():
        torch.onnx.export(
            module,
            (example,),
            target,
            dynamo=False,
            input_names=[_INPUT],
            output_names=[_OUTPUT],
            dynamic_axes={_INPUT: {0: "n"}, _OUTPUT: {0: "n"}},
            opset_version=_OPSET,
        )


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep rather than spin, leaving the cores to the image decoders.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _safe(text: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in text)
