"""The ledger of Label Studio tasks: one per image content and project.

Tasks pushed before this revision are entered from the round items that hold them (the
latest item per project and content wins), so an image already in a project is never sent
again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

_BACKFILL = """
INSERT INTO studio_tasks (project_id, image_id, content_sha256, task_id, round_id, created_at)
SELECT r.project_id, ri.image_id, i.sha256, ri.task_id, ri.round_id, r.created_at
FROM round_items ri
JOIN rounds r ON r.id = ri.round_id
JOIN images i ON i.id = ri.image_id
WHERE ri.id IN (
    SELECT MAX(ri2.id)
    FROM round_items ri2
    JOIN rounds r2 ON r2.id = ri2.round_id
    JOIN images i2 ON i2.id = ri2.image_id
    WHERE ri2.task_id IS NOT NULL
      AND r2.project_id IS NOT NULL
      AND ri2.task_id NOT IN (SELECT task_id FROM deleted_tasks)
    GROUP BY r2.project_id, i2.sha256
)
"""


def upgrade() -> None:
    op.create_table(
        "studio_tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("rounds.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("project_id", "content_sha256"),
    )
    op.create_index("ix_studio_tasks_image_id", "studio_tasks", ["image_id"])
    op.create_index("ix_studio_tasks_task_id", "studio_tasks", ["task_id"])
    op.create_index("ix_studio_tasks_round_id", "studio_tasks", ["round_id"])
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_table("studio_tasks")
