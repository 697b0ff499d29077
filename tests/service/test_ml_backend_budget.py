"""The time budget of one `/predict` call and the cache of fetched images' embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from service.studio.ml_backend.cache import EmbeddingCache, content_key
from service.studio.ml_backend.images import Budget


def test_the_budget_starts_a_batch_only_while_its_expected_time_fits() -> None:
    now = [100.0]
    budget = Budget(10.0, clock=lambda: now[0])
    assert budget.may_start(1000)  # nothing embedded yet: every call makes progress
    with budget.batch() as run:
        now[0] += 2.0
        run.embedded = 4  # 0.5 s per image
    assert budget.may_start(16) and not budget.may_start(17)  # 2 s + 8 s fits, 8.5 s not
    now[0] += 7.0
    assert budget.may_start(2) and not budget.may_start(3)
    assert budget.problem.code == "over_budget" and "10 s budget" in budget.problem.message


def test_the_cache_keeps_the_most_recent_vectors_by_content() -> None:
    cache = EmbeddingCache(2)
    keys = [content_key("b", bytes([n])) for n in range(3)]
    assert content_key("other", b"\x00") != keys[0]
    for n, key in enumerate(keys[:2]):
        cache.put(key, np.full(3, n, dtype=np.float32))
    assert cache.get(keys[0]) is not None  # now the most recent
    cache.put(keys[2], np.zeros(3, dtype=np.float32))
    assert cache.get(keys[1]) is None and len(cache) == 2
    assert cache.get(keys[0]).tolist() == [0.0, 0.0, 0.0]  # type: ignore[union-attr]
    assert (cache.hits, cache.misses) == (2, 1)
    nothing = EmbeddingCache(0)
    nothing.put(keys[0], np.zeros(3, dtype=np.float32))
    assert len(nothing) == 0
    with pytest.raises(ValueError, match="capacity of 0 or more"):
        EmbeddingCache(-1)
