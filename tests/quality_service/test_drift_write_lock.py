"""A drift report computes with no write pending: other writers get the lock at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from quality.drift import DriftResult
from service.core.db import WRITE, bind_for, make_engine, session_factory, transaction
from service.quality.drift.batch import check_ids
from service.quality.drift.run import run_drift_report
from service.quality.drift.spending import SpendingMoved, read_policy, save_spending
from tests.helpers import ImagePool, api_client, image_ids_by_name, register_pool
from tests.quality_service.drift_sets import DriftSets, drift_sets, drift_settings

__all__ = ["drift_sets"]


def lock_is_free(database: str) -> bool:
    """Whether another connection takes the write lock without waiting at all."""
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_no_write_lock_while_the_checks_run(
    tmp_path: Path, fashion_pool: ImagePool, drift_sets: DriftSets
) -> None:
    settings = drift_settings(tmp_path, fashion_pool, drift_sets, None, drift_after_ingestion=False)
    with api_client(settings) as client:
        ctx = client.app.state.context  # type: ignore[attr-defined]
        database = str(ctx.engine.url.database)
        register_pool(client, str(fashion_pool.folder))
        assert run_drift_report(ctx, trigger="test").report is None  # fixes the reference
        register_pool(client, str(drift_sets.same))
        seen: dict[str, bool] = {}

        def progress(_fraction: float, message: str) -> None:
            # after the window is read, and after the image check (its permutation test)
            if message in ("running the checks", "images checked"):
                seen[message] = lock_is_free(database)

        outcome = run_drift_report(ctx, trigger="test", progress=progress)
        assert seen == {"running the checks": True, "images checked": True}
        assert outcome.report is not None and outcome.report_id is not None
        images = next(c for c in outcome.report.checks if c.check == "images")
        assert images.status == "ran" and images.sequence_check == 1
        register_pool(client, str(drift_sets.unseen))
        ids = [i for name, i in image_ids_by_name(client).items() if name.startswith("d")]
        free: list[bool] = []
        batch = check_ids(ctx, ids, progress=lambda *_: free.append(lock_is_free(database)))
        assert batch.verdict == "failed" and free and all(free)  # a pipeline's batch check
        again = run_drift_report(ctx, trigger="test")  # the spent check was committed
        assert again.report is not None
        assert next(c for c in again.report.checks if c.check == "images").sequence_check == 2


def test_a_sequence_is_spent_once_per_read(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'spending.db'}")
    factory = session_factory(bind_for(engine, WRITE))
    with factory() as session:
        before = read_policy(session, "f" * 32, "images", alpha=0.05, horizon=5)
    assert (before.checks, before.spent) == (0, 0.0)
    result = DriftResult(
        test="mmd",
        statistic=1.0,
        p_value=0.5,
        threshold=0.05,
        drifted=False,
        n_reference=50,
        n_new=20,
    )
    after = before.apply(result)[1]
    with transaction(factory) as session:
        save_spending(session, "f" * 32, "images", before, after)
    with factory() as session:
        stored = read_policy(session, "f" * 32, "images", alpha=0.01, horizon=9)
        assert (stored.alpha, stored.horizon, stored.checks) == (0.05, 5, 1)
        with pytest.raises(SpendingMoved):  # a second report that read the same state
            save_spending(session, "f" * 32, "images", before, after)
    engine.dispose()
