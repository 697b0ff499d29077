import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest

from models.vector_store import HEADER_BYTES, IDS_FILE, VECTORS_FILE, VectorStore, VectorStoreError

BACKBONE = "efficientnet_lite0@224-test"


def vectors_for(ids: np.ndarray, dim: int = 16) -> np.ndarray:
    """A vector that can be recomputed from its id, to check every row read back."""
    ids = np.asarray(ids, dtype=np.float32)
    return ids[:, None] * 0.5 + np.arange(dim, dtype=np.float32)[None, :]


def test_real_embeddings_round_trip_through_a_reopened_store(probe_data, tmp_path: Path) -> None:
    embeddings = probe_data.test_embeddings
    ids = np.arange(1000, 1000 + len(embeddings), dtype=np.int64)[::-1].copy()
    store = VectorStore.open(tmp_path, dim=embeddings.shape[1], backbone_id=probe_data.backbone_id)
    assert store.append(ids[:100], embeddings[:100]) == 100
    assert store.append(ids[50:], embeddings[50:]) == len(ids) - 100  # overlap skipped
    reopened = VectorStore.open(tmp_path, writable=False)
    assert (reopened.dim, reopened.backbone_id, len(reopened)) == (
        1280,
        probe_data.backbone_id,
        len(ids),
    )
    np.testing.assert_array_equal(reopened.ids(), ids)
    picked = ids[[5, 0, 250, 77]]
    np.testing.assert_array_equal(reopened.get(picked), embeddings[[5, 0, 250, 77]])
    assert (tmp_path / VECTORS_FILE).stat().st_size == HEADER_BYTES + len(ids) * 1280 * 4


def test_lookups_of_missing_ids(tmp_path: Path) -> None:
    store = VectorStore.open(tmp_path, dim=16, backbone_id=BACKBONE)
    np.testing.assert_array_equal(store.rows_of(np.array([3])), [-1])
    store.append(np.array([7, 3, 11]), vectors_for(np.array([7, 3, 11])))
    np.testing.assert_array_equal(store.rows_of(np.array([3, 4, 11, 12, 7])), [1, -1, 2, -1, 0])
    np.testing.assert_array_equal(store.contains(np.array([1, 11])), [False, True])
    with pytest.raises(KeyError, match="1 ids are not stored"):
        store.get(np.array([3, 4]))


def test_a_store_is_opened_only_as_what_it_is(tmp_path: Path) -> None:
    with pytest.raises(VectorStoreError, match="no vector store"):
        VectorStore.open(tmp_path / "absent")
    VectorStore.open(tmp_path, dim=16, backbone_id=BACKBONE)
    with pytest.raises(VectorStoreError, match="16-d vectors, not 32-d"):
        VectorStore.open(tmp_path, dim=32)
    with pytest.raises(VectorStoreError, match="is for backbone"):
        VectorStore.open(tmp_path, backbone_id="resnet18@224-random")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / VECTORS_FILE).write_bytes(b"not a store" * 500)
    with pytest.raises(VectorStoreError, match="not a version-1 vector store"):
        VectorStore.open(tmp_path / "other")
    read_only = VectorStore.open(tmp_path, writable=False)
    with pytest.raises(VectorStoreError, match="read-only"):
        read_only.append(np.array([1]), vectors_for(np.array([1])))


def test_bad_appends_are_rejected(tmp_path: Path) -> None:
    store = VectorStore.open(tmp_path, dim=16, backbone_id=BACKBONE)
    with pytest.raises(ValueError, match=r"shape \(2, 16\)"):
        store.append(np.array([1, 2]), np.zeros((2, 8)))
    with pytest.raises(ValueError, match="distinct"):
        store.append(np.array([1, 1]), np.zeros((2, 16)))
    with pytest.raises(ValueError, match="finite"):
        store.append(np.array([1]), np.full((1, 16), np.nan))
    with pytest.raises(ValueError, match="integer image_ids"):
        store.append(np.array([1.5]), np.zeros((1, 16)))
    assert len(store) == 0 and store.append(np.array([], dtype=np.int64), np.zeros((0, 16))) == 0


@pytest.mark.parametrize("torn_bytes", [4 * 16 * 3, 4 * 16 + 10])
def test_a_torn_append_is_invisible_and_cut_off_on_open(tmp_path: Path, torn_bytes: int) -> None:
    store = VectorStore.open(tmp_path, dim=16, backbone_id=BACKBONE)
    store.append(np.arange(5), vectors_for(np.arange(5)))
    # What a crash after writing rows and ids, before the count is committed, leaves behind.
    with open(tmp_path / VECTORS_FILE, "ab") as handle:
        handle.write(vectors_for(np.arange(5, 8)).tobytes()[:torn_bytes])
    with open(tmp_path / IDS_FILE, "ab") as handle:
        handle.write(np.arange(5, 7, dtype="<i8").tobytes())
    reader = VectorStore.open(tmp_path, writable=False)
    assert len(reader) == 5 and reader.rows_of(np.array([5]))[0] == -1
    writer = VectorStore.open(tmp_path)
    assert (tmp_path / VECTORS_FILE).stat().st_size == HEADER_BYTES + 5 * 16 * 4
    assert (tmp_path / IDS_FILE).stat().st_size == 5 * 8
    assert writer.append(np.arange(3, 9), vectors_for(np.arange(3, 9))) == 4
    np.testing.assert_array_equal(writer.get(np.arange(9)), vectors_for(np.arange(9)))
    assert reader.refresh() == 9


def test_chunks_stream_every_row_in_order_and_release_pages(tmp_path: Path) -> None:
    dim = 1280  # a row is 5 KiB, so chunks span many pages
    store = VectorStore.open(tmp_path, dim=dim, backbone_id=BACKBONE)
    ids = np.random.default_rng(0).permutation(10_000)[:2_500]
    store.append(ids, vectors_for(ids, dim))
    seen = []
    for chunk in store.chunks(rows=300):
        assert chunk.vectors.shape == (len(chunk.ids), dim) and not chunk.vectors.flags.writeable
        np.testing.assert_array_equal(chunk.vectors, vectors_for(chunk.ids, dim))
        seen.append((chunk.start, chunk.ids.copy()))
    assert [start for start, _ in seen] == list(range(0, 2_500, 300))
    np.testing.assert_array_equal(np.concatenate([part for _, part in seen]), ids)
    # Released pages are read again from the file when touched.
    first = next(store.chunks(rows=300))
    np.testing.assert_array_equal(store.get(first.ids), vectors_for(first.ids, dim))
    with pytest.raises(ValueError, match="rows >= 1"):
        next(store.chunks(rows=0))


def test_threads_append_while_readers_only_ever_see_whole_rows(tmp_path: Path) -> None:
    store = VectorStore.open(tmp_path, dim=64, backbone_id=BACKBONE)
    stop = threading.Event()
    problems: list[str] = []

    def write(worker: int) -> None:
        for batch in range(30):
            ids = np.arange(40) * 100 + worker * 10_000 + batch
            store.append(ids, vectors_for(ids, 64))

    def read() -> None:
        while not stop.is_set():
            for chunk in store.chunks(rows=500, release=False):
                if not np.array_equal(chunk.vectors, vectors_for(chunk.ids, 64)):
                    problems.append(f"rows from {chunk.start} do not match their ids")

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    reader = threading.Thread(target=read)
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()
    assert problems == []
    assert len(store) == 4 * 30 * 40 and len(np.unique(store.ids())) == len(store)


def _append_from_another_process(directory: str, worker: int) -> None:
    store = VectorStore.open(directory)
    for batch in range(20):
        ids = np.arange(25) * 1000 + worker * 100 + batch
        store.append(ids, vectors_for(ids))


def test_processes_append_to_one_store_without_losing_rows(tmp_path: Path) -> None:
    store = VectorStore.open(tmp_path, dim=16, backbone_id=BACKBONE)
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append_from_another_process, args=(str(tmp_path), w))
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert store.refresh() == 3 * 20 * 25
    ids = store.ids()
    assert len(np.unique(ids)) == len(ids)
    np.testing.assert_array_equal(store.get(ids), vectors_for(ids))
