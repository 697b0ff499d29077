"""Sending a push's tasks to Label Studio in chunked bulk imports, at its own pace.

Each chunk is one import call. Its ledger rows are committed before the call (without task
ids) and again after it (with them). While Label Studio is slow or down (a timeout, a 5xx, a
refused connection: `LabelStudioUnavailable`), the chunk is retried after an exponential
backoff with jitter; before each retry, `ledger.recover` finds the tasks an earlier try may
have created after all, so only the rest is sent. Retrying stops after `Backoff.total_s`:
the error then reaches the job, which the durable job machinery runs again later.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from labeling.errors import LabelStudioUnavailable
from labeling.gateway import LabelStudioGateway
from labeling.tasks import TaskDraft
from service.core.progress import Progress, no_progress
from service.studio.ledger import LedgerRow, recover

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delays between tries of one chunk: doubling from `first_s` up to `max_s`, each drawn
    in [50%, 100%] of that (jitter), for at most `total_s` seconds after the first failure."""

    first_s: float = 0.5
    max_s: float = 10.0
    total_s: float = 120.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th failed try in a row (>= 1)."""
        if failures < 1:
            raise ValueError(f"expected failures >= 1, got {failures}")
        ceiling = min(self.max_s, self.first_s * 2.0 ** (failures - 1))
        return ceiling * rng.uniform(0.5, 1.0)


@dataclass
class ChunkReport:
    """What sending took: import calls that created tasks, failed tries, tasks recovered."""

    chunks: int = 0
    retries: int = 0
    recovered: int = 0


@dataclass(frozen=True)
class ChunkSender:
    """Sends ledger rows as tasks (`draft_for` builds each row's task) into one project."""

    session: Session
    gateway: LabelStudioGateway
    project_id: int
    draft_for: Callable[[LedgerRow], TaskDraft]
    chunk_size: int = 1000
    backoff: Backoff = Backoff()
    rng: random.Random = field(default_factory=random.Random)

    def send(
        self,
        rows: Sequence[LedgerRow],
        *,
        landed: Callable[[Sequence[LedgerRow]], None] = lambda _rows: None,
        progress: Progress = no_progress,
    ) -> ChunkReport:
        """Import `rows` in order, chunk by chunk; `landed(chunk)` runs before each commit."""
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        report = ChunkReport()
        self.session.commit()  # before: every row to send is stored, none with a task id
        total = max(len(rows), 1)
        for start in range(0, len(rows), self.chunk_size):
            chunk = rows[start : start + self.chunk_size]
            self._send_chunk(chunk, report, label=f"tasks {start + 1}-{start + len(chunk)}")
            landed(chunk)
            self.session.commit()  # after: the chunk's task ids are stored
            done = start + len(chunk)
            progress(done / total, f"{done} of {len(rows)} tasks in Label Studio")
        return report

    def _send_chunk(self, chunk: Sequence[LedgerRow], report: ChunkReport, *, label: str) -> None:
        """Until every row of `chunk` has a task: import the missing ones, retrying on failure."""
        failures, first_failure = 0, 0.0
        while True:
            try:
                if failures:
                    found = recover(self.session, self.gateway, self.project_id)
                    self.session.commit()  # no write lock held across the import call
                    for row in chunk:
                        row.task_id = found.get(row.content_sha256, row.task_id)
                    report.recovered += len(found)
                pending = [row for row in chunk if row.task_id is None]
                if not pending:
                    return
                drafts = [self.draft_for(row) for row in pending]
                task_ids = self.gateway.import_chunk(self.project_id, drafts)
            except LabelStudioUnavailable as err:
                failures += 1
                first_failure = first_failure or time.monotonic()
                delay = self.backoff.delay(failures, self.rng)
                waited = time.monotonic() - first_failure
                if waited + delay > self.backoff.total_s:
                    raise LabelStudioUnavailable(
                        f"pushing {label}: Label Studio did not take them in {waited:.0f} s "
                        f"of {failures} tries; the job will try again. Last error: {err}"
                    ) from err
                log.warning("pushing %s failed (%s); retry in %.1f s", label, err, delay)
                report.retries += 1
                time.sleep(delay)
                continue
            for row, task_id in zip(pending, task_ids, strict=True):
                row.task_id = task_id
            report.chunks += 1
            return
