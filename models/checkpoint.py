"""Saving and loading trained heads as weights-only torch files."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.errors import TORCH_LOAD_ERRORS, CheckpointError
from models.head import HEAD_KEYS, TrainedHead, head_version

FORMAT = "activelabel.head"
FORMAT_VERSION = 1


def save_checkpoint(head: TrainedHead, directory: str | Path) -> Path:
    """Write ``head`` to ``directory / f"{head.version}.pt"`` and return that path.

    The file is written under a temporary name and renamed into place, so a reader never
    sees half a checkpoint. Only tensors and plain Python values are stored.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{head.version}.pt"
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state": {key: head.state[key].detach().cpu().contiguous() for key in HEAD_KEYS},
        "class_names": list(head.class_names),
        "backbone_id": head.backbone_id,
        "embedding_dim": int(head.embedding_dim),
        "version": head.version,
        "n_train": int(head.n_train),
        "metrics": {name: float(value) for name, value in head.metrics.items()},
        "created_at": head.created_at,
        "temperature": float(head.temperature),
    }
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pt")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_tensor_file(path: str | Path, *, what: str) -> Any:
    """``torch.load`` of tensors and plain types only; CheckpointError naming ``what`` otherwise."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"{what} {path} does not exist") from err
    except TORCH_LOAD_ERRORS as err:
        reason = f"{type(err).__name__}: {err}"
        raise CheckpointError(f"{what} {path} cannot be read ({reason})") from err


def load_checkpoint(path: str | Path) -> TrainedHead:
    """Read a head written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` when the file is missing, unreadable, of another
    format, or when its weights no longer match its recorded version. Files written before
    heads had a temperature load with temperature 1.0 and keep their version.
    """
    payload = read_tensor_file(path, what="checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version")
        raise CheckpointError(
            f"checkpoint {path} has format version {found}, expected {FORMAT_VERSION}"
        )
    try:
        head = _head_from_payload(payload)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is incomplete or malformed: {err}") from err
    expected = head_version(
        head.backbone_id, head.class_names, head.state, temperature=head.temperature
    )
    if expected != head.version:
        raise CheckpointError(f"checkpoint {path}: weights do not match version {head.version}")
    return head


def _head_from_payload(payload: dict[str, Any]) -> TrainedHead:
    state = {key: payload["state"][key] for key in HEAD_KEYS}
    class_names = [str(name) for name in payload["class_names"]]
    embedding_dim = int(payload["embedding_dim"])
    weight, bias = state["weight"], state["bias"]
    if not all(isinstance(tensor, torch.Tensor) for tensor in (weight, bias)):
        raise TypeError("head weights are not tensors")
    expected = (len(class_names), embedding_dim)
    if tuple(weight.shape) != expected or tuple(bias.shape) != (len(class_names),):
        raise ValueError(
            f"weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not fit {expected}"
        )
    return TrainedHead(
        state={key: tensor.float() for key, tensor in state.items()},
        class_names=class_names,
        backbone_id=str(payload["backbone_id"]),
        embedding_dim=embedding_dim,
        version=str(payload["version"]),
        n_train=int(payload["n_train"]),
        metrics={str(k): float(v) for k, v in dict(payload["metrics"]).items()},
        created_at=str(payload["created_at"]),
        temperature=_temperature(payload.get("temperature", 1.0)),
    )


def _temperature(value: Any) -> float:
    temperature = float(value)
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature {value!r} is not a finite positive number")
    return temperature
