from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.datasets import FASHION_MNIST_CLASSES
from models.head import TrainedHead
from models.rerank import rerank, top_k_indices
from models.training import train_head
from models.uncertainty import entropy, margin, rank_by_score
from models.vector_store import VectorStore


@pytest.fixture(scope="module")
def trained(probe_data) -> TrainedHead:
    return train_head(
        probe_data.train_embeddings,
        probe_data.train_labels,
        class_names=list(FASHION_MNIST_CLASSES),
        backbone_id=probe_data.backbone_id,
        epochs=100,
    )


@pytest.fixture
def pool(probe_data, tmp_path: Path) -> tuple[VectorStore, np.ndarray]:
    """The probe's 300 test embeddings under shuffled image ids, appended in three parts."""
    ids = np.random.default_rng(1).permutation(10_000)[:300].astype(np.int64)
    store = VectorStore.open(tmp_path, dim=1280, backbone_id=probe_data.backbone_id)
    for part in np.array_split(np.arange(300), 3):
        store.append(ids[part], probe_data.test_embeddings[part])
    return store, ids


@pytest.mark.parametrize("score", [entropy, margin])
def test_streamed_reranking_equals_scoring_the_whole_pool(
    probe_data, trained: TrainedHead, pool, score
) -> None:
    store, ids = pool
    expected_probs = trained.predict_proba(probe_data.test_embeddings)
    expected = rank_by_score(score(expected_probs), k=25)
    result = rerank(store, trained, score, 25, chunk_rows=64)
    np.testing.assert_array_equal(result.ids, ids[expected])
    np.testing.assert_array_equal(result.rows, expected)
    np.testing.assert_allclose(result.probabilities, expected_probs[expected], atol=1e-5)
    np.testing.assert_allclose(result.scores, score(expected_probs)[expected], atol=1e-5)
    assert result.n_scored == 300 and result.seconds > 0


def test_a_calibrated_heads_temperature_is_applied(probe_data, trained: TrainedHead, pool) -> None:
    store, ids = pool
    softened = replace(trained, temperature=3.0)
    expected_probs = softened.predict_proba(probe_data.test_embeddings)
    result = rerank(store, softened, entropy, 10, chunk_rows=100)
    expected = rank_by_score(entropy(expected_probs), k=10)
    np.testing.assert_array_equal(result.ids, ids[expected])
    np.testing.assert_allclose(result.probabilities, expected_probs[expected], atol=1e-5)


def test_excluded_images_are_never_chosen(probe_data, trained: TrainedHead, pool) -> None:
    store, ids = pool
    scores = entropy(trained.predict_proba(probe_data.test_embeddings))
    labeled = ids[rank_by_score(scores, k=10)]
    result = rerank(store, trained, entropy, 20, exclude=labeled, chunk_rows=50)
    remaining = np.flatnonzero(~np.isin(ids, labeled))
    expected = remaining[rank_by_score(scores[remaining], k=20)]
    np.testing.assert_array_equal(result.ids, ids[expected])
    assert result.n_scored == 290 and not np.isin(result.ids, labeled).any()


def test_ties_keep_store_order_across_chunks_and_k_may_exceed_the_pool(
    trained: TrainedHead, pool
) -> None:
    store, ids = pool

    def flat(probs: np.ndarray) -> np.ndarray:
        return np.ones(len(probs))

    np.testing.assert_array_equal(rerank(store, trained, flat, 7, chunk_rows=3).ids, ids[:7])
    everything = rerank(store, trained, entropy, 1000, chunk_rows=128)
    assert len(everything.ids) == 300 and np.all(np.diff(everything.scores) <= 0)


def test_top_k_indices_matches_a_full_sort_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    for n, k in [(50, 1), (200, 17), (200, 200), (10, 30)]:
        scores = rng.integers(0, 6, size=n).astype(np.float64)
        expected = np.sort(np.argsort(-scores, kind="stable")[:k])
        np.testing.assert_array_equal(top_k_indices(scores, k), expected)


def test_mismatched_heads_and_bad_scores_are_rejected(trained: TrainedHead, pool) -> None:
    store, _ = pool
    with pytest.raises(ValueError, match="expected a head for"):
        rerank(store, replace(trained, backbone_id="resnet18@224-random"), entropy, 5)
    with pytest.raises(ValueError, match="k >= 1"):
        rerank(store, trained, entropy, 0)
    with pytest.raises(ValueError, match=r"\(64,\) finite scores"):
        rerank(store, trained, lambda probs: np.full(len(probs), np.nan), 5, chunk_rows=64)
    with pytest.raises(ValueError, match=r"\(64,\) finite scores"):
        rerank(store, trained, lambda probs: probs, 5, chunk_rows=64)
