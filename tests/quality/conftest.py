"""Fixtures the quality tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Many small runs in a row: one torch and BLAS thread each avoids thread hand-off costs
    that dominate small problems on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)
