"""The image model: embeddings, probabilities, uncertainty and head training.

Imports only torch, torchvision, numpy and pillow, so it runs on a machine without the web
stack. EfficientNet-Lite0's packages are imported when that backbone is built.
"""

from models.backbone import (
    Backbone,
    BackboneSpec,
    available_architectures,
    load_backbone,
)
from models.checkpoint import load_checkpoint, save_checkpoint
from models.datasets import (
    FASHION_MNIST_CLASSES,
    find_fashion_mnist_dir,
    load_fashion_mnist,
    write_pngs,
)
from models.device import resolve_device
from models.embedding import EmbeddingResult, ImageFailure, embed_images
from models.errors import (
    CheckpointError,
    DeviceUnavailable,
    ImageDecodeError,
    ModelError,
    UnknownArchitecture,
)
from models.head import TrainedHead
from models.images import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image, load_rgb
from models.training import train_head
from models.uncertainty import (
    available_strategies,
    entropy,
    get_strategy,
    least_confidence,
    margin,
    random_scores,
    rank_by_score,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FASHION_MNIST_CLASSES",
    "Backbone",
    "BackboneSpec",
    "CheckpointError",
    "DeviceUnavailable",
    "EmbeddingResult",
    "ImageDecodeError",
    "ImageFailure",
    "ImageInfo",
    "ModelError",
    "TrainedHead",
    "UnknownArchitecture",
    "available_architectures",
    "available_strategies",
    "embed_images",
    "entropy",
    "find_fashion_mnist_dir",
    "get_strategy",
    "inspect_image",
    "least_confidence",
    "load_backbone",
    "load_checkpoint",
    "load_fashion_mnist",
    "load_rgb",
    "margin",
    "random_scores",
    "rank_by_score",
    "resolve_device",
    "save_checkpoint",
    "train_head",
    "write_pngs",
]
