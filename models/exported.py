"""A frozen backbone exported to ONNX and run by ONNX Runtime: the fastest CPU path.

On a 2-core AVX-512 EPYC, EfficientNet-Lite0 at 224 px runs about 1.7x faster under ONNX
Runtime (fp32, batches of 16) than under eager PyTorch with bf16 autocast, and its embeddings
match eager fp32 to a cosine of 0.99999 (see docs/benchmarks.md). Its static int8
quantisation (``models.quantized``) is the opt-in faster path. The export runs once per
(backbone, torch version) and is cached on disk; sessions are kept per process.

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
from models.quantized import calibration_inputs, quantise_int8

__all__ = ["OnnxRunner", "default_cache_dir", "exported_runner", "onnx_runtime_available"]

log = logging.getLogger(__name__)
_OPSET = 17
_INPUT, _OUTPUT = "pixels", "embeddings"
# Runners by (model file, threads); None remembers a failed export, so it is not retried
# (and logged) on every call in this process.
_SESSIONS: dict[tuple[Path, int], OnnxRunner | None] = {}
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
    name made of the backbone's id and the torch version. ``threads`` defaults to torch's
    intra-op thread count. Any export or load failure is logged once and gives None.
    """
    if not onnx_runtime_available():
        return None
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    stem = f"{_safe(backbone.backbone_id)}-torch{_safe(torch.__version__)}"
    fp32, path = folder / f"{stem}.onnx", folder / f"{stem}{'-int8' if int8 else ''}.onnx"
    key = (path, threads or torch.get_num_threads())
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        runner: OnnxRunner | None = None
        try:
            if not fp32.exists():
                _atomically(fp32, lambda scratch: _export(backbone, scratch))
            if not path.exists():
                inputs = calibration_inputs(backbone.image_size, backbone.mean, backbone.std)
                _atomically(path, lambda scratch: quantise_int8(fp32, scratch, inputs, _INPUT))
            runner = OnnxRunner(_session(path, key[1]), path)
        except Exception as err:  # an unexportable architecture, a full disk, a bad file
            log.warning("ONNX Runtime path unavailable for %s: %s", backbone.backbone_id, err)
        _SESSIONS[key] = runner
        return runner


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
