"""Durable jobs: scope and key, attempts, a lease with heartbeat, cancel requests, checkpoints.

Two partial unique indexes keep one active job per (kind, scope, key) and one running job
per scope, across processes. Jobs the old runner left unfinished end as `interrupted`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ACTIVE = sa.text("status IN ('queued', 'running')")
RUNNING = sa.text("status = 'running'")
NEW_COLUMNS = (
    sa.Column("scope", sa.String(255), nullable=False, server_default="global"),
    sa.Column("key", sa.String(255), nullable=False, server_default=""),
    sa.Column("checkpoint", sa.JSON(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="3"),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("run_after", TZ, nullable=True),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", TZ, nullable=True),
    sa.Column("heartbeat_at", TZ, nullable=True),
    sa.Column("started_at", TZ, nullable=True),
    sa.Column("finished_at", TZ, nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in NEW_COLUMNS:
            batch.add_column(column.copy())
    op.execute(
        "UPDATE jobs SET status = 'failed', error_code = 'interrupted', "
        "error_message = 'the service stopped before this job finished' "
        "WHERE status IN ('queued', 'running')"
    )
    op.execute("UPDATE jobs SET finished_at = updated_at WHERE status <> 'queued'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("done")
    op.create_index(
        "uq_jobs_active_kind_scope_key",
        "jobs",
        ["kind", "scope", "key"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_index(
        "uq_jobs_running_scope",
        "jobs",
        ["scope"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])


def downgrade() -> None:
    for name in (
        "ix_jobs_status_created",
        "uq_jobs_running_scope",
        "uq_jobs_active_kind_scope_key",
    ):
        op.drop_index(name, table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("done", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.execute("UPDATE jobs SET done = (status IN ('succeeded', 'failed', 'cancelled'))")
    with op.batch_alter_table("jobs") as batch:
        for column in reversed(NEW_COLUMNS):
            batch.drop_column(column.name)
