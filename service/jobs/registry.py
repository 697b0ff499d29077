"""Job kinds and their handlers: what a domain declares in its `jobs.py` as `HANDLERS`.

A handler is `handler(service_context, job_context) -> dict` (the job's JSON result). It must
be idempotent: a job whose lease expired (its process died) runs again from the start, with
`job.checkpoint` holding what an earlier attempt saved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.context import ServiceContext
from service.core.errors import ServiceError
from service.core.progress import Progress
from service.core.settings import Settings
from service.jobs.tables import GLOBAL_SCOPE


class JobCancelled(ServiceError):
    """Raised inside a handler (by `progress` or `check_cancelled`) once a cancel was asked."""

    status_code, code = 409, "cancelled"


class JobInterrupted(ServiceError):
    """Raised inside a handler when its worker stops or lost the lease: the job runs again."""

    status_code, code = 503, "interrupted"


@dataclass(frozen=True)
class JobContext:
    """What a running handler gets: its job, and the calls that report and stop it."""

    job_id: str
    params: dict[str, Any]
    attempt: int  # 1 on the first run
    progress: Progress  # (fraction in [0, 1], message); raises JobCancelled once cancelled
    check_cancelled: Callable[[], None]  # raises JobCancelled / JobInterrupted
    checkpoint: dict[str, Any] = field(default_factory=dict)  # saved by an earlier attempt
    save_checkpoint: Callable[[dict[str, Any]], None] = lambda _state: None


JobHandler = Callable[[ServiceContext, JobContext], dict[str, Any]]
Interval = float | Callable[[Settings], float | None] | None
Scope = str | Callable[[Settings], str]


@dataclass(frozen=True)
class JobSpec:
    """A kind of job and how to run it.

    - `max_attempts`: runs allowed, counting those cut off by a dead process and the retries
      below; the job then fails with code `interrupted` (or its last error).
    - `retry_on`: exceptions worth another attempt (an outside system down), after
      `retry_delay_s * 2 ** (attempt - 1)` seconds; any other exception fails the job.
    - `every_s`: run periodically (seconds, or a function of the settings; None or <= 0 never)
      in `scope` (a string or a function of the settings). Dedupe keeps one queued.
    """

    kind: str
    handler: JobHandler
    max_attempts: int = 3
    every_s: Interval = None
    scope: Scope = GLOBAL_SCOPE
    retry_on: tuple[type[BaseException], ...] = ()
    retry_delay_s: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 100:
            raise ValueError(f"max_attempts must be in [1, 100], got {self.max_attempts}")
        if not 1 <= len(self.kind) <= 32:
            raise ValueError(f"a job kind has 1 to 32 characters, got {self.kind!r}")

    def interval(self, settings: Settings) -> float | None:
        """Seconds between periodic runs, or None when the kind is not periodic."""
        every = self.every_s(settings) if callable(self.every_s) else self.every_s
        return every if every is not None and every > 0 else None

    def scope_for(self, settings: Settings) -> str:
        return self.scope(settings) if callable(self.scope) else self.scope


def build_registry(*handler_maps: Mapping[str, JobSpec]) -> dict[str, JobSpec]:
    """One registry from each domain's `HANDLERS`; a kind declared twice is a `ValueError`."""
    registry: dict[str, JobSpec] = {}
    for handlers in handler_maps:
        for kind, spec in handlers.items():
            if kind != spec.kind:
                raise ValueError(f"HANDLERS key {kind!r} names a spec of kind {spec.kind!r}")
            if kind in registry:
                raise ValueError(f"job kind {kind!r} is declared twice")
            registry[kind] = spec
    return registry
