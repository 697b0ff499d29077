"""Errors raised by the image model package.

Every error carries a stable machine-readable ``code`` and a human message, so a caller
(the web service, a CLI) can report it without a traceback.
"""

from __future__ import annotations

import pickle
import zipfile
from typing import Literal

# What torch.load raises on damaged, truncated or foreign files in weights-only mode.
TORCH_LOAD_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)

ImageErrorCode = Literal["not_an_image", "image_corrupt", "image_too_large", "image_unreadable"]


class ModelError(Exception):
    """Base class for every error raised by ``models``."""

    code: str = "model_error"


class DeviceUnavailable(ModelError):
    """The requested compute device does not exist on this machine."""

    code = "device_unavailable"


class RuntimeUnavailable(ModelError):
    """The requested inference path (int8 through ONNX Runtime) cannot run here."""

    code = "runtime_unavailable"


class ImageDecodeError(ModelError):
    """An image file could not be decoded.

    ``code`` is one of ``not_an_image``, ``image_corrupt``, ``image_too_large`` or
    ``image_unreadable``; ``reason`` says what went wrong in words.
    """

    def __init__(self, path: str, code: ImageErrorCode, reason: str) -> None:
        super().__init__(f"{path}: {reason} ({code})")
        self.path = path
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageDecodeError], tuple[str, str, str]]:
        return (type(self), (self.path, self.code, self.reason))


class CheckpointError(ModelError):
    """A checkpoint or weights file is missing, corrupt or does not fit the model."""

    code = "checkpoint_invalid"


class UnknownArchitecture(ModelError):
    """The backbone architecture name is not one this package can build."""

    code = "unknown_architecture"
