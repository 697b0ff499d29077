"""The pool's jobs: registering a folder of images, then asking for a drift check of them."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from service.context import ServiceContext
from service.jobs.queue import enqueue
from service.jobs.registry import JobContext, JobSpec
from service.pool.registration import register_folder, resolve_allowed

POOL_SCOPE = "pool"  # registrations run one at a time: they write the same images table
# Declared by service/quality/drift/jobs.py; enqueued by name after images were registered.
DRIFT_KIND, DRIFT_SCOPE = "drift_check", "drift"


def folder_key(folder: Path) -> str:
    """The dedupe key of a folder's registration (a path can be longer than a key)."""
    return hashlib.sha256(str(folder).encode()).hexdigest()[:32]


def register(ctx: ServiceContext, job: JobContext) -> dict[str, Any]:
    """Register every image below `params["folder"]`; known files are counted, not redone."""
    folder = resolve_allowed(str(job.params["folder"]), ctx.settings.allowed_roots)
    with ctx.sessions() as session:
        report = register_folder(
            session,
            folder,
            allowed_roots=ctx.settings.allowed_roots,
            max_pixels=ctx.settings.max_image_pixels,
            progress=lambda done, total: job.progress(
                done / max(total, 1), f"checked {done}/{total} files"
            ),
        )
    if report.registered and ctx.settings.quality.drift_after_ingestion:
        with ctx.sessions() as session:
            enqueue(session, DRIFT_KIND, {"trigger": "registration"}, scope=DRIFT_SCOPE)
            session.commit()
    return {
        "registered": report.registered,
        "already_known": report.already_known,
        "skipped": [asdict(s) for s in report.skipped],
    }


HANDLERS = {"register": JobSpec("register", register)}
