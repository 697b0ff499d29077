"""Choosing the torch device that embeddings are computed on."""

from __future__ import annotations

import torch

from models.errors import DeviceUnavailable


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device` that exists here.

    ``"auto"`` picks the first CUDA device when one is available, else the CPU. ``"cpu"``,
    ``"cuda"``, ``"cuda:N"`` and ``"mps"`` are checked against this machine; anything else,
    or an accelerator that is not present, raises :class:`DeviceUnavailable`.
    """
    text = name.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise DeviceUnavailable(f"invalid device name {name!r}: {err}") from err
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        return _check_cuda(device, name)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceUnavailable(f"device {name!r} was asked for but MPS is not available")
        return device
    raise DeviceUnavailable(f"unsupported device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def _check_cuda(device: torch.device, name: str) -> torch.device:
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {name!r} was asked for but CUDA is not available")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceUnavailable(f"device {name!r} does not exist: this machine has {count} GPU(s)")
    return device
