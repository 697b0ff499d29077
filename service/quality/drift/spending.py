"""Alpha spending per check kind, kept in the database so the sequence continues across runs.

Each kind of check (images, predictions, labels, annotators) under one guide version has its
own `quality.drift.AlphaSpending` sequence with a horizon of `quality.drift_max_checks`
checks: over all of them, the chance of any false alarm of that kind stays at most the
guide's drift significance. The alpha and horizon are those in force when the sequence began;
a new guide version starts new sequences (and a new reference).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from sqlalchemy.orm import Session

from quality.drift import AlphaSpending, DriftResult
from service.core.orm import utcnow
from service.quality.drift.tables import DriftSpending

R = TypeVar("R", bound=DriftResult)


def load_policy(
    session: Session, fingerprint: str, check: str, *, alpha: float, horizon: int
) -> tuple[DriftSpending, AlphaSpending]:
    """The stored sequence of `check` (created at check 0 when absent; flush only)."""
    row = session.get(DriftSpending, (fingerprint, check), with_for_update=True)
    if row is None:
        row = DriftSpending(
            guide_fingerprint=fingerprint,
            check=check,
            alpha=alpha,
            horizon=horizon,
            checks=0,
            spent=0.0,
        )
        session.add(row)
        session.flush()
    policy = AlphaSpending(alpha=row.alpha, horizon=row.horizon, checks=row.checks, spent=row.spent)
    return row, policy


def spend(row: DriftSpending, policy: AlphaSpending, result: R) -> R:
    """`result` judged at the sequence's next level; the row moves on one check."""
    judged, after = policy.apply(result)
    if judged.threshold <= 0:
        spent = (
            f"; the budget of {after.horizon} checks is spent: only a certain drift (p = 0) "
            "alarms until a new guide version starts a new sequence"
        )
        judged = replace(judged, control=judged.control + spent)
    row.checks, row.spent, row.updated_at = after.checks, after.spent, utcnow()
    return judged
