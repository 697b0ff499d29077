import pytest
import torch

from models.device import resolve_device
from models.errors import DeviceUnavailable, ModelError


def test_auto_picks_cuda_only_when_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    assert resolve_device("auto").type == expected


def test_cpu_is_always_available() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_is_an_error(name: str) -> None:
    with pytest.raises(DeviceUnavailable, match="CUDA is not available") as info:
        resolve_device(name)
    assert isinstance(info.value, ModelError) and info.value.code == "device_unavailable"


def test_gpu_index_past_the_last_is_an_error() -> None:
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda:99")


@pytest.mark.parametrize("name", ["gpu", "meta", ""])
def test_unknown_or_unsupported_names_are_errors(name: str) -> None:
    with pytest.raises(DeviceUnavailable):
        resolve_device(name)
