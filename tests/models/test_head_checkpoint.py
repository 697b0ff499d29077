from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.datasets import FASHION_MNIST_CLASSES
from models.errors import CheckpointError
from models.training import train_head


@pytest.fixture(scope="module")
def head(probe_data):
    return train_head(
        probe_data.train_embeddings[:100],
        probe_data.train_labels[:100],
        class_names=list(FASHION_MNIST_CLASSES),
        backbone_id=probe_data.backbone_id,
        epochs=50,
    )


def test_round_trip_gives_identical_probabilities(head, probe_data, tmp_path: Path) -> None:
    path = save_checkpoint(head, tmp_path / "heads")
    assert path == tmp_path / "heads" / f"{head.version}.pt"
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert leftovers == []  # no temporary file left behind
    loaded = load_checkpoint(path)
    fields = (
        "class_names",
        "backbone_id",
        "embedding_dim",
        "version",
        "n_train",
        "created_at",
    )
    for field in fields:  # field by field: tensors have no plain ==
        assert getattr(loaded, field) == getattr(head, field)
    for key in ("weight", "bias"):
        assert torch.equal(loaded.state[key], head.state[key])
    assert loaded.metrics == pytest.approx(head.metrics)
    np.testing.assert_array_equal(
        loaded.predict_proba(probe_data.test_embeddings),
        head.predict_proba(probe_data.test_embeddings),
    )


def test_saving_twice_replaces_the_file(head, tmp_path: Path) -> None:
    first = save_checkpoint(head, tmp_path)
    second = save_checkpoint(head, tmp_path)
    assert first == second and load_checkpoint(second).version == head.version


@pytest.mark.parametrize("cut", [0, 10, 0.5])
def test_truncated_checkpoint_is_rejected(head, tmp_path: Path, cut: float) -> None:
    path = save_checkpoint(head, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert info.value.code == "checkpoint_invalid"


def test_missing_and_foreign_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(text)
    weights = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2, 2)}, weights)
    with pytest.raises(CheckpointError, match="not an activelabel.head file"):
        load_checkpoint(weights)


def test_tampered_weights_are_detected(head, tmp_path: Path) -> None:
    path = save_checkpoint(head, tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["state"]["bias"] = payload["state"]["bias"] + 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not match version"):
        load_checkpoint(path)


def test_malformed_payload_is_rejected(head, tmp_path: Path) -> None:
    path = save_checkpoint(head, tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["class_names"] = payload["class_names"][:3]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint(path)
    del payload["state"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint(path)
