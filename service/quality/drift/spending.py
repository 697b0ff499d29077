"""Alpha spending per check kind, kept in the database so the sequence continues across runs.

Each kind of check (images, predictions, labels, annotators) under one guide version has its
own `quality.drift.AlphaSpending` sequence with a horizon of `quality.drift_max_checks`
checks: over all of them, the chance of any false alarm of that kind stays at most the
guide's drift significance. The alpha and horizon are those in force when the sequence began;
a new guide version starts new sequences (and a new reference).

A report reads the sequences as plain values (`read_policy`), judges its checks with them
(`spend`), and writes where they moved to (`save_spending`) only in its final write unit, so
no write is pending while it computes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from sqlalchemy.orm import Session

from quality.drift import AlphaSpending, DriftResult
from service.core.errors import ServiceError
from service.core.orm import utcnow
from service.quality.drift.tables import DriftSpending

R = TypeVar("R", bound=DriftResult)


class SpendingMoved(ServiceError):
    """A sequence moved between a report's read and its write (another report spent it)."""

    status_code, code = 409, "drift_spending_moved"


def read_policy(
    session: Session, fingerprint: str, check: str, *, alpha: float, horizon: int
) -> AlphaSpending:
    """The stored sequence of `check`, or a new one at check 0 when absent (reads only)."""
    row = session.get(DriftSpending, (fingerprint, check))
    if row is None:
        return AlphaSpending(alpha=alpha, horizon=horizon, checks=0, spent=0.0)
    return AlphaSpending(alpha=row.alpha, horizon=row.horizon, checks=row.checks, spent=row.spent)


def spend(policy: AlphaSpending, result: R) -> tuple[R, AlphaSpending]:
    """`result` judged at the sequence's next level, and the sequence one check on."""
    judged, after = policy.apply(result)
    if judged.threshold <= 0:
        spent = (
            f"; the budget of {after.horizon} checks is spent: only a certain drift (p = 0) "
            "alarms until a new guide version starts a new sequence"
        )
        judged = replace(judged, control=judged.control + spent)
    return judged, after


def save_spending(
    session: Session, fingerprint: str, check: str, before: AlphaSpending, after: AlphaSpending
) -> None:
    """Move the stored sequence of `check` from `before` to `after` (flush only).

    Call it in a write unit: `SpendingMoved` when the row no longer stands at `before`.
    """
    row = session.get(DriftSpending, (fingerprint, check), populate_existing=True)
    if row is None:
        if before.checks != 0:
            raise SpendingMoved(f"the {check} sequence of guide {fingerprint} disappeared")
        row = DriftSpending(
            guide_fingerprint=fingerprint, check=check, alpha=before.alpha, horizon=before.horizon
        )
        session.add(row)
    elif (row.checks, row.spent) != (before.checks, before.spent):
        raise SpendingMoved(
            f"the {check} sequence of guide {fingerprint} moved to check {row.checks} "
            f"since check {before.checks} was read"
        )
    row.checks, row.spent, row.updated_at = after.checks, after.spent, utcnow()
    session.flush()
