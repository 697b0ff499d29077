"""An append-only, memory-mapped store of one backbone's embeddings, keyed by int64 image ids.

A store is a folder holding two files:

* ``vectors.f32``: a 4,096-byte header (magic, format version, embedding size, backbone id,
  committed row count) followed by rows of ``dim`` little-endian float32;
* ``ids.i64``: the image id of each row, little-endian int64, in row order.

An append writes the rows and their ids past the committed end, flushes both files to disk,
and only then writes the new row count into the header: that 8-byte write is the commit.
Readers look at the committed count only, so they never see a half-written row. A crash
mid-append leaves bytes past the committed end; opening the store for writing cuts them off.
Appends are serialised by a lock within a process and by ``flock`` across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER_BYTES = 4096
_MAGIC = b"ALVECF32"
_FORMAT_VERSION = 1
# magic, version, dim, backbone id length, committed rows; then the backbone id bytes.
_HEADER = struct.Struct("<8sIIIQ")
_COUNT_OFFSET = 20
_MAX_BACKBONE_ID = HEADER_BYTES - _HEADER.size
VECTORS_FILE = "vectors.f32"
IDS_FILE = "ids.i64"


class VectorStoreError(ValueError):
    """The folder holds no store, a damaged one, or one made for another backbone."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive stored rows: ``ids: (n,)`` int64 and ``vectors: (n, dim)`` float32.

    ``vectors`` is a read-only view of the mapped file; ``start`` is the first row's number.
    """

    start: int
    ids: np.ndarray
    vectors: np.ndarray


class VectorStore:
    """Embeddings of one backbone, appended once per image id and read through ``mmap``.

    Open with :meth:`open`. Reading methods use the rows committed when they start.
    """

    def __init__(self, directory: Path, dim: int, backbone_id: str, writable: bool) -> None:
        self.directory = directory
        self.dim = dim
        self.backbone_id = backbone_id
        self.writable = writable
        self._row_bytes = 4 * dim
        self._lock = threading.Lock()
        self._count = _read_count(directory / VECTORS_FILE)
        self._ids = np.fromfile(directory / IDS_FILE, dtype="<i8", count=self._count)
        if len(self._ids) < self._count:
            raise VectorStoreError(f"{directory / IDS_FILE} holds fewer ids than rows committed")
        self._order: np.ndarray | None = None  # argsort of self._ids, built on first lookup
        self._map: tuple[int, mmap.mmap] | None = None

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        dim: int | None = None,
        backbone_id: str | None = None,
        writable: bool = True,
    ) -> VectorStore:
        """Open the store in ``directory``, creating it when ``dim`` and ``backbone_id`` are given.

        A writable open cuts off any torn append. Raises :class:`VectorStoreError` when the
        folder holds no store (and none may be created), a damaged one, or one whose size or
        backbone differs from those given.
        """
        folder = Path(directory)
        vectors = folder / VECTORS_FILE
        if not vectors.exists():
            if not writable or dim is None or backbone_id is None:
                raise VectorStoreError(f"no vector store in {folder}")
            _create(folder, dim, backbone_id)
        found_dim, found_backbone, _ = _read_header(vectors)
        if dim is not None and dim != found_dim:
            raise VectorStoreError(f"store in {folder} holds {found_dim}-d vectors, not {dim}-d")
        if backbone_id is not None and backbone_id != found_backbone:
            raise VectorStoreError(
                f"store in {folder} is for backbone {found_backbone!r}, not {backbone_id!r}"
            )
        if writable:
            with _file_lock(folder):
                _repair(folder, found_dim)
        return cls(folder, found_dim, found_backbone, writable)

    def __len__(self) -> int:
        return self._count

    def ids(self) -> np.ndarray:
        """The ids of the committed rows ``(n,)`` int64, in row order (a copy)."""
        return self._ids[: self._count].copy()

    def refresh(self) -> int:
        """Pick up rows committed by other processes since opening; returns the row count."""
        with self._lock:
            self._refresh_locked()
            return self._count

    def rows_of(self, image_ids: np.ndarray) -> np.ndarray:
        """Row number of each id in ``image_ids: (n,)``, or -1 for ids not stored; ``(n,)``."""
        wanted = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        with self._lock:
            count, ids = self._count, self._ids
            if self._order is None:
                self._order = np.argsort(ids[:count], kind="stable")
            order = self._order
        if count == 0:
            return np.full(len(wanted), -1, dtype=np.int64)
        position = np.minimum(np.searchsorted(ids[order], wanted), count - 1)
        rows = order[position]
        return np.where(ids[rows] == wanted, rows, -1).astype(np.int64)

    def contains(self, image_ids: np.ndarray) -> np.ndarray:
        """Whether each id in ``image_ids: (n,)`` is stored; ``(n,)`` bool."""
        return self.rows_of(image_ids) >= 0

    def get(self, image_ids: np.ndarray) -> np.ndarray:
        """Vectors ``(n, dim)`` float32 of ``image_ids: (n,)``, in that order (a copy).

        Raises ``KeyError`` naming the ids that are not stored.
        """
        wanted = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        rows = self.rows_of(wanted)
        if np.any(rows < 0):
            missing = wanted[rows < 0][:5].tolist()
            raise KeyError(f"{int(np.sum(rows < 0))} ids are not stored, e.g. {missing}")
        return np.array(self._matrix(len(self))[rows], dtype=np.float32)

    def chunks(self, rows: int = 32768, *, release: bool = True) -> Iterator[Chunk]:
        """The committed rows, ``rows`` at a time, as views of the mapped file.

        With ``release`` the pages of a chunk are dropped from this process's memory once
        the next chunk is asked for (they stay in the page cache), so a pass over a store
        larger than RAM holds about one chunk. Do not keep a chunk's views past that point
        if you need them resident: copy them.
        """
        if rows < 1:
            raise ValueError(f"expected rows >= 1, got {rows}")
        count = len(self)
        ids = self._ids
        buffer = self._mapping(count)
        matrix = self._matrix(count)
        for start in range(0, count, rows):
            stop = min(start + rows, count)
            yield Chunk(start, ids[start:stop], matrix[start:stop])
            if release:
                first = HEADER_BYTES + start * self._row_bytes
                _drop_pages(buffer, first, HEADER_BYTES + stop * self._row_bytes)

    def append(self, image_ids: np.ndarray, vectors: np.ndarray) -> int:
        """Store ``vectors: (n, dim)`` for ``image_ids: (n,)``; returns how many were new.

        Ids already stored are skipped (an embedding is computed once per image), so a
        retried append is harmless. Raises ValueError for mismatched shapes, non-finite
        values or an id repeated within the call.
        """
        ids, matrix = _validate_append(image_ids, vectors, self.dim)
        if not self.writable:
            raise VectorStoreError(f"store in {self.directory} was opened read-only")
        with self._lock, _file_lock(self.directory):
            self._refresh_locked()
            fresh = ~_member(self._ids[: self._count], ids)
            ids, matrix = ids[fresh], matrix[fresh]
            if len(ids) == 0:
                return 0
            _write_rows(self.directory, self._count, self._row_bytes, ids, matrix)
            _write_count(self.directory / VECTORS_FILE, self._count + len(ids))
            self._ids = np.concatenate([self._ids[: self._count], ids])
            self._count, self._order = self._count + len(ids), None
        return len(ids)

    def close(self) -> None:
        """Drop this store's mapping; it is unmapped once no view of it is left."""
        with self._lock:
            self._map = None

    def _refresh_locked(self) -> None:
        count = _read_count(self.directory / VECTORS_FILE)
        if count > self._count:
            extra = np.fromfile(
                self.directory / IDS_FILE,
                dtype="<i8",
                count=count - self._count,
                offset=8 * self._count,
            )
            self._ids = np.concatenate([self._ids[: self._count], extra])
            self._count, self._order = count, None

    def _mapping(self, count: int) -> mmap.mmap:
        length = HEADER_BYTES + count * self._row_bytes
        with self._lock:
            if self._map is None or self._map[0] < length:
                with open(self.directory / VECTORS_FILE, "rb") as handle:
                    mapped = mmap.mmap(handle.fileno(), length, access=mmap.ACCESS_READ)
                self._map = (length, mapped)  # an older map stays alive in the views using it
            return self._map[1]

    def _matrix(self, count: int) -> np.ndarray:
        buffer = self._mapping(count)
        flat = np.frombuffer(buffer, dtype="<f4", count=count * self.dim, offset=HEADER_BYTES)
        return flat.reshape(count, self.dim)


def _member(stored: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Whether each of ``wanted: (n,)`` occurs in ``stored: (m,)``; ``(n,)`` bool."""
    return np.isin(wanted, stored, assume_unique=True)


def _validate_append(
    image_ids: np.ndarray, vectors: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(image_ids)
    matrix = np.ascontiguousarray(vectors, dtype="<f4")
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"expected integer image_ids of shape (n,), got {ids.dtype} {ids.shape}")
    if matrix.shape != (len(ids), dim):
        raise ValueError(f"expected vectors of shape ({len(ids)}, {dim}), got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("expected finite vectors, got NaN or infinity")
    ids = ids.astype("<i8")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("expected distinct image_ids within one append")
    return ids, matrix


def _create(folder: Path, dim: int, backbone_id: str) -> None:
    encoded = backbone_id.encode()
    if dim < 1 or not encoded or len(encoded) > _MAX_BACKBONE_ID:
        raise ValueError(
            f"expected dim >= 1 and a backbone id of 1-{_MAX_BACKBONE_ID} bytes, "
            f"got {dim} and {len(encoded)} bytes"
        )
    folder.mkdir(parents=True, exist_ok=True)
    header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, dim, len(encoded), 0) + encoded
    temporary = folder / (VECTORS_FILE + ".new")
    with open(temporary, "wb") as handle:
        handle.write(header.ljust(HEADER_BYTES, b"\0"))
        handle.flush()
        os.fsync(handle.fileno())
    (folder / IDS_FILE).touch()
    os.replace(temporary, folder / VECTORS_FILE)  # the store exists once its header is whole
    _fsync_dir(folder)


def _read_header(path: Path) -> tuple[int, str, int]:
    """``(dim, backbone_id, committed rows)`` from the data file's header."""
    with open(path, "rb") as handle:
        raw = handle.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise VectorStoreError(f"{path} is too short to hold a vector store header")
    magic, version, dim, id_length, count = _HEADER.unpack_from(raw)
    if magic != _MAGIC or version != _FORMAT_VERSION or dim < 1 or id_length > _MAX_BACKBONE_ID:
        raise VectorStoreError(f"{path} is not a version-{_FORMAT_VERSION} vector store")
    backbone_id = raw[_HEADER.size : _HEADER.size + id_length].decode()
    return dim, backbone_id, count


def _read_count(path: Path) -> int:
    with open(path, "rb") as handle:
        handle.seek(_COUNT_OFFSET)
        return int(struct.unpack("<Q", handle.read(8))[0])


def _write_count(path: Path, count: int) -> None:
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, struct.pack("<Q", count), _COUNT_OFFSET)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_rows(
    folder: Path, count: int, row_bytes: int, ids: np.ndarray, matrix: np.ndarray
) -> None:
    """Write rows and ids past the committed end and flush them; the count is not touched."""
    for name, offset, payload in (
        (VECTORS_FILE, HEADER_BYTES + count * row_bytes, matrix),
        (IDS_FILE, 8 * count, ids),
    ):
        with open(folder / name, "r+b") as handle:
            handle.truncate(offset)  # anything past the committed end is a torn append
            handle.seek(offset)
            handle.write(memoryview(payload).cast("B"))
            handle.flush()
            os.fsync(handle.fileno())


def _repair(folder: Path, dim: int) -> None:
    """Cut off bytes past the committed end of both files (left by an interrupted append)."""
    _, _, count = _read_header(folder / VECTORS_FILE)
    expected = {VECTORS_FILE: HEADER_BYTES + count * 4 * dim, IDS_FILE: 8 * count}
    for name, size in expected.items():
        path = folder / name
        actual = path.stat().st_size
        if actual < size:
            raise VectorStoreError(f"{path} has {actual} bytes, fewer than the {size} committed")
        if actual > size:
            os.truncate(path, size)


def _drop_pages(buffer: mmap.mmap, start: int, stop: int) -> None:
    """Release the whole pages of bytes ``[start, stop)`` of ``buffer`` from this process."""
    first = start - start % mmap.PAGESIZE
    last = stop - stop % mmap.PAGESIZE  # the page shared with the next chunk stays
    if last > first and hasattr(mmap, "MADV_DONTNEED"):
        buffer.madvise(mmap.MADV_DONTNEED, first, last - first)


@contextlib.contextmanager
def _file_lock(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the store's data file, held across processes."""
    descriptor = os.open(folder / VECTORS_FILE, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
