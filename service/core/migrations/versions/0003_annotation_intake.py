"""Annotation intake: what each annotation records, raw webhook events, the watermark.

Annotations gain the project, the prediction the annotator was shown, the guide in force,
Label Studio's timestamps and a deleted flag; raw webhook events and the reconciliation
watermark get their tables; deleted tasks are remembered so their images rejoin the pool.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NEW_COLUMNS = (
    sa.Column("project_id", sa.Integer(), nullable=True),
    sa.Column("problem_code", sa.String(32), nullable=True),
    sa.Column("shown_prediction_id", sa.Integer(), nullable=True),
    sa.Column("shown_model_version", sa.String(64), nullable=True),
    sa.Column("shown_label", sa.String(128), nullable=True),
    sa.Column("guide_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("guide_fingerprint", sa.String(32), nullable=False, server_default=""),
    sa.Column("studio_created_at", TZ, nullable=True),
    sa.Column("studio_updated_at", TZ, nullable=True),
    sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", TZ, nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("annotations") as batch:
        for column in NEW_COLUMNS:
            batch.add_column(column.copy())
    op.execute(
        "UPDATE annotations SET studio_updated_at = annotated_at, "
        "problem_code = CASE WHEN problem IS NULL THEN NULL "
        "ELSE substr(problem, 1, instr(problem, ':') - 1) END"
        if op.get_bind().dialect.name == "sqlite"
        else "UPDATE annotations SET studio_updated_at = annotated_at, "
        "problem_code = split_part(problem, ':', 1)"
    )
    with op.batch_alter_table("annotations") as batch:
        for name in ("suggested_label", "model_version", "annotated_at"):
            batch.drop_column(name)
        batch.create_index("ix_annotations_project_id", ["project_id"])
        batch.create_index("ix_annotations_annotator", ["annotator"])
    op.create_table(
        "deleted_tasks",
        sa.Column("task_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("deleted_at", TZ, nullable=False),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("body_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("applied_at", TZ, nullable=True),
    )
    op.create_index("ix_webhook_events_status", "webhook_events", ["status"])
    op.create_table(
        "reconcile_state",
        sa.Column("project_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("watermark", TZ, nullable=True),
        sa.Column("last_run_at", TZ, nullable=True),
        sa.Column("last_full_at", TZ, nullable=True),
        sa.Column("tasks_read", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconcile_state")
    op.drop_index("ix_webhook_events_status", "webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("deleted_tasks")
    with op.batch_alter_table("annotations") as batch:
        batch.drop_index("ix_annotations_annotator")
        batch.drop_index("ix_annotations_project_id")
        batch.add_column(sa.Column("suggested_label", sa.String(128), nullable=True))
        batch.add_column(sa.Column("model_version", sa.String(64), nullable=True))
        batch.add_column(sa.Column("annotated_at", TZ, nullable=True))
    op.execute("UPDATE annotations SET annotated_at = studio_updated_at")
    with op.batch_alter_table("annotations") as batch:
        for column in NEW_COLUMNS:
            batch.drop_column(column.name)
