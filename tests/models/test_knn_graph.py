from pathlib import Path

import numpy as np
import pytest

from models.knn_graph import (
    GRAPH_FILE,
    KnnGraph,
    KnnGraphError,
    build_knn_graph,
    extend_knn_graph,
)
from models.vector_store import VectorStore

K = 6


def mixture(n: int, dim: int = 48, centres: int = 12, seed: int = 0) -> np.ndarray:
    """Clustered vectors whose variance falls off with the dimension, like embeddings."""
    rng = np.random.default_rng(seed)
    scales = np.arange(1, dim + 1, dtype=np.float32) ** -0.75
    means = rng.standard_normal((centres, dim), dtype=np.float32) * scales * 3
    vectors = rng.standard_normal((n, dim), dtype=np.float32) * scales
    return vectors + means[rng.integers(0, centres, n)] + 0.3


def brute_force(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similar = unit.astype(np.float64) @ unit.T.astype(np.float64)
    np.fill_diagonal(similar, -np.inf)
    best = np.argsort(-similar, axis=1, kind="stable")[:, :k]
    return best, np.take_along_axis(similar, best, axis=1)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def test_the_exact_graph_is_the_brute_force_one() -> None:
    vectors = mixture(500)
    ids = np.arange(1000, 1500)[::-1].copy()
    graph = build_knn_graph(vectors, ids, k=K)
    best, similar = brute_force(vectors, K)
    assert graph.exact and (graph.n, graph.k) == (500, K)
    assert graph.neighbours.dtype == np.int32 and graph.similarities.dtype == np.float32
    np.testing.assert_array_equal(graph.ids, ids)
    np.testing.assert_array_equal(graph.neighbours, best)
    np.testing.assert_allclose(graph.similarities, similar, atol=1e-5)
    assert not np.any(graph.neighbours == np.arange(500)[:, None])
    assert np.all(np.diff(graph.similarities, axis=1) <= 0)


def test_the_approximate_graph_has_high_recall_and_is_deterministic() -> None:
    vectors = mixture(3000, dim=96, centres=20)
    ids = np.arange(3000)
    kwargs = {"k": K, "method": "ivf", "dims": 32, "seed": 3}
    graph = build_knn_graph(vectors, ids, **kwargs)
    assert not graph.exact and graph.index.basis.shape == (96, 32)
    assert recall(graph.neighbours, brute_force(vectors, K)[0]) > 0.9
    assert not np.any(graph.neighbours == np.arange(3000)[:, None])
    assert np.all(np.diff(graph.similarities, axis=1) <= 0)
    again = build_knn_graph(vectors, ids, **kwargs)
    np.testing.assert_array_equal(again.neighbours, graph.neighbours)
    np.testing.assert_array_equal(again.similarities, graph.similarities)


@pytest.mark.parametrize("method", ["exact", "ivf"])
def test_a_store_gives_the_graph_of_its_rows(tmp_path: Path, method: str) -> None:
    vectors = mixture(1200)
    ids = np.random.default_rng(1).permutation(5000)[:1200].astype(np.int64)
    store = VectorStore.open(tmp_path, dim=48, backbone_id="synthetic@48")
    store.append(ids, vectors)
    kwargs = {"k": K, "method": method, "dims": 16, "chunk_rows": 256}
    from_store = build_knn_graph(store, **kwargs)
    from_array = build_knn_graph(vectors, ids, **kwargs)
    np.testing.assert_array_equal(from_store.ids, ids)
    np.testing.assert_array_equal(from_store.neighbours, from_array.neighbours)
    np.testing.assert_allclose(from_store.similarities, from_array.similarities, atol=1e-6)
    with pytest.raises(ValueError, match="store's ids"):
        build_knn_graph(store, ids[::-1], k=K)


def test_extending_an_exact_graph_equals_rebuilding_it() -> None:
    vectors, ids = mixture(700), np.arange(700) * 3
    graph = extend_knn_graph(
        build_knn_graph(vectors[:600], ids[:600], k=K), vectors[600:], ids[600:]
    )
    rebuilt = build_knn_graph(vectors, ids, k=K)
    np.testing.assert_array_equal(graph.ids, rebuilt.ids)
    np.testing.assert_array_equal(graph.neighbours, rebuilt.neighbours)
    np.testing.assert_allclose(graph.similarities, rebuilt.similarities, atol=1e-6)
    assert extend_knn_graph(graph, vectors[:0], ids[:0]) is graph


def test_extending_an_approximate_graph_keeps_its_lists_and_its_recall() -> None:
    vectors, ids = mixture(3000, dim=96, centres=20), np.arange(3000)
    kwargs = {"k": K, "method": "ivf", "dims": 32}
    base = build_knn_graph(vectors[:2500], ids[:2500], **kwargs)
    graph = extend_knn_graph(base, vectors[2500:], ids[2500:])
    rebuilt = build_knn_graph(vectors, ids, **kwargs)
    truth = brute_force(vectors, K)[0]
    assert recall(graph.neighbours, truth) > 0.9
    assert recall(graph.neighbours, rebuilt.neighbours) > 0.9
    assert np.any(graph.neighbours[:2500] >= 2500)  # old rows took new neighbours
    assert graph.index.fitted_rows == 2500 and not graph.needs_rebuild
    grown = extend_knn_graph(graph, mixture(700, dim=96, centres=20, seed=5), np.arange(700) + 3000)
    assert grown.needs_rebuild


def test_a_saved_graph_loads_as_itself_and_only_for_its_ids(tmp_path: Path) -> None:
    vectors, ids = mixture(800), np.arange(800) + 7
    for graph in (
        build_knn_graph(vectors, ids, k=K),
        build_knn_graph(vectors, ids, k=K, method="ivf", dims=16),
    ):
        path = graph.save(tmp_path)
        assert path == tmp_path / GRAPH_FILE and [p.name for p in tmp_path.iterdir()] == [
            GRAPH_FILE
        ]
        loaded = KnnGraph.load(tmp_path, ids=ids)
        for name in ("ids", "neighbours", "similarities"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(graph, name))
        np.testing.assert_array_equal(loaded.index.rows, graph.index.rows)
        assert loaded.exact == graph.exact
    with pytest.raises(KnnGraphError, match="other ids"):
        KnnGraph.load(tmp_path, ids=ids[::-1])
    with pytest.raises(KnnGraphError, match="no kNN graph"):
        KnnGraph.load(tmp_path / "absent")
    (tmp_path / GRAPH_FILE).write_bytes(path.read_bytes()[:5000])
    with pytest.raises(KnnGraphError, match="not a readable kNN graph"):
        KnnGraph.load(tmp_path)


def test_bad_input_is_refused_with_what_was_expected() -> None:
    vectors, ids = mixture(50), np.arange(50)
    for k in (0, 50, 2.0):
        with pytest.raises(ValueError, match="expected 1 <= k < n = 50"):
            build_knn_graph(vectors, ids, k=k)
    with pytest.raises(ValueError, match="one id per row"):
        build_knn_graph(vectors, ids[:49], k=K)
    with pytest.raises(ValueError, match="distinct ids"):
        build_knn_graph(vectors, np.zeros(50, dtype=np.int64), k=K)
    with pytest.raises(ValueError, match="expected ids"):
        build_knn_graph(vectors, k=K)
    for bad in (np.nan, np.inf):
        broken = vectors.copy()
        broken[7, 3] = bad
        with pytest.raises(ValueError, match="finite"):
            build_knn_graph(broken, ids, k=K)
    zeroed = vectors.copy()
    zeroed[4] = 0
    with pytest.raises(ValueError, match="non-zero"):
        build_knn_graph(zeroed, ids, k=K)
    with pytest.raises(ValueError, match="method"):
        build_knn_graph(vectors, ids, k=K, method="hnsw")
    with pytest.raises(ValueError, match="n_lists"):
        build_knn_graph(vectors, ids, k=K, method="ivf", n_lists=51)
    graph = build_knn_graph(vectors, ids, k=K)
    with pytest.raises(ValueError, match="not in the graph"):
        extend_knn_graph(graph, vectors[:2], ids[:2])
    for built in (graph, build_knn_graph(vectors, ids, k=K, method="ivf", dims=8)):
        with pytest.raises(ValueError, match="48-d vectors like the graph's"):
            extend_knn_graph(built, np.ones((2, 8), np.float32), np.array([90, 91]))
