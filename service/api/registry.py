"""Every job kind the service runs, gathered from each domain's `HANDLERS`."""

from __future__ import annotations

from typing import Literal

from service.jobs.registry import JobSpec, build_registry
from service.learning import jobs as learning_jobs
from service.pool import jobs as pool_jobs
from service.quality import jobs as quality_jobs
from service.studio import jobs as studio_jobs


def job_registry() -> dict[str, JobSpec]:
    """Every job kind the service runs, from each domain's `HANDLERS`."""
    return build_registry(
        pool_jobs.HANDLERS, learning_jobs.HANDLERS, studio_jobs.HANDLERS, quality_jobs.HANDLERS
    )


JobKind = Literal[tuple(sorted(job_registry()))]  # type: ignore[valid-type]  # a filter names one
