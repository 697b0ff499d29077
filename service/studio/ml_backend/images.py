"""Embeddings of the tasks' images for one `/predict` call, within the call's time budget.

Label Studio sends every selected task in one call and gives up after `ML_TIMEOUT_PREDICT`
(100 s by default). Work is done cheapest first: registered images already embedded (nearly
free), then registered images still to embed, then images fetched from URLs, in batches of
`predict_batch_size`. A batch starts only while the time spent plus the batch's expected
time fits `predict_budget_s`, except that every call runs at least one batch that embeds
something, so repeated calls always progress. Tasks left out get `over_budget`; fetched
images' embeddings are cached by content, so the next call skips the ones already done.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.context import ServiceContext
from service.core.orm import Image
from service.pool.embeddings import embedding_store, ensure_embeddings
from service.studio.ml_backend.cache import content_key
from service.studio.ml_backend.fetch import FetchFailure, ImageFetcher

QUERY_CHUNK = 500  # ids per IN clause, under every database's bind-parameter limit


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


# Image id or URL -> its (D,) float32 embedding, or why there is none.
Found: TypeAlias = dict[int | str, np.ndarray | Problem]


@dataclass
class BatchRun:
    embedded: int = 0  # images the batch embedded (cache hits and failures not counted)


class Budget:
    """The time one call may work, and how long its batches took per image embedded."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.started = clock()
        self.embedded = 0  # images embedded by this call's batches
        self.worked_s = 0.0  # seconds those batches took (fetching included)

    @property
    def problem(self) -> Problem:
        return Problem(
            "over_budget",
            f"not predicted within the {self.seconds:g} s budget of one call; "
            "retrieve predictions again",
        )

    def may_start(self, size: int) -> bool:
        """Whether a batch of `size` images fits; always while nothing was embedded yet."""
        if self.embedded == 0:
            return True
        expected = self.worked_s / self.embedded * size
        return self.clock() - self.started + expected <= self.seconds

    @contextmanager
    def batch(self) -> Iterator[BatchRun]:
        """Times one batch; the body sets how many images it embedded."""
        started, run = self.clock(), BatchRun()
        yield run
        self.worked_s += self.clock() - started
        self.embedded += run.embedded


def stored_vectors(
    session: Session, ctx: ServiceContext, image_ids: Sequence[int], budget: Budget
) -> Found:
    """Embeddings of the registered images asked for; a Problem for each one without."""
    wanted = sorted(set(image_ids))
    images: list[Image] = []
    for start in range(0, len(wanted), QUERY_CHUNK):
        chunk = wanted[start : start + QUERY_CHUNK]
        images.extend(session.scalars(select(Image).where(Image.id.in_(chunk))))
    found: Found = {i: Problem("not_found", f"image {i} is not registered") for i in wanted}
    store = embedding_store(session, ctx.runtime)
    ids = np.array([image.id for image in images], dtype=np.int64)
    done = store.contains(ids).tolist() if store is not None else [False] * len(images)
    ready = [i for i, d in zip(images, done, strict=True) if d or i.unusable_reason]
    pending = [i for i, d in zip(images, done, strict=True) if not (d or i.unusable_reason)]
    _note_stored(found, ready, ensure_embeddings(session, ctx.runtime, ready).vectors)
    size = ctx.settings.ml_backend.predict_batch_size
    for start in range(0, len(pending), size):
        batch = pending[start : start + size]
        if not budget.may_start(len(batch)):
            found.update({image.id: budget.problem for image in pending[start:]})
            break
        with budget.batch() as run:
            stored = ensure_embeddings(session, ctx.runtime, batch)
            session.commit()  # embeddings computed for images never embedded before
            run.embedded = stored.computed
        _note_stored(found, batch, stored.vectors)
    return found


def _note_stored(found: Found, images: Sequence[Image], vectors: dict[int, np.ndarray]) -> None:
    for image in images:
        vector = vectors.get(image.id)
        if vector is not None:
            found[image.id] = vector
        elif image.unusable_reason:
            found[image.id] = Problem("invalid_image", f"image {image.id}: {image.unusable_reason}")
        else:
            found[image.id] = Problem("image_unreadable", f"image {image.id} cannot be read now")


def fetched_vectors(ctx: ServiceContext, urls: Sequence[str], budget: Budget) -> Found:
    """Embeddings of the images behind `urls` (each fetched once), or Problems."""
    found: Found = {}
    size = ctx.settings.ml_backend.predict_batch_size
    with ImageFetcher(ctx.settings) as fetcher:
        for start in range(0, len(urls), size):
            batch = urls[start : start + size]
            if not budget.may_start(len(batch)):
                found.update({url: budget.problem for url in urls[start:]})
                break
            with budget.batch() as run:
                run.embedded = _fetch_and_embed(ctx, fetcher, batch, found)
    return found


def _fetch_and_embed(
    ctx: ServiceContext, fetcher: ImageFetcher, urls: Sequence[str], found: Found
) -> int:
    """Fill `found` for `urls` from the cache or one batched run; how many were embedded."""
    cache, backbone = ctx.fetched_embeddings, ctx.runtime.backbone_id
    waiting: dict[str, list[str]] = {}  # content key -> URLs with those bytes
    bodies: dict[str, bytes] = {}
    for url, body in zip(urls, fetcher.fetch_all(urls), strict=True):
        if isinstance(body, FetchFailure):
            found[url] = Problem(body.code, body.reason)
            continue
        key = content_key(backbone, body)
        vector = cache.get(key) if key not in waiting else None
        if vector is not None:
            found[url] = vector
        else:
            waiting.setdefault(key, []).append(url)
            bodies[key] = body
    if not waiting:
        return 0
    keys = list(waiting)
    with tempfile.TemporaryDirectory(prefix="activelabel-ml-") as folder:
        paths = [Path(folder) / f"{n:06d}.img" for n in range(len(keys))]
        for path, key in zip(paths, keys, strict=True):
            path.write_bytes(bodies[key])
        result = ctx.runtime.embed(paths)  # one batched run, decode failures reported
    for row, index in enumerate(result.indices):
        vector = np.asarray(result.embeddings[row], dtype=np.float32)
        cache.put(keys[index], vector)
        found.update(dict.fromkeys(waiting[keys[index]], vector))
    for failure in result.failures:
        where = _where(waiting[keys[failure.index]][0])
        problem = Problem(failure.code, f"the image at {where}: {failure.reason}")
        found.update(dict.fromkeys(waiting[keys[failure.index]], problem))
    return len(result.indices)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"[:200] if parts.netloc else url[:200]
