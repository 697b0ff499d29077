"""Round items remember when their waiting task was withdrawn from the annotators' queue,
and a deleted task whether the service withdrew it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("round_items") as batch:
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deleted_tasks") as batch:
        batch.add_column(
            sa.Column("withdrawn", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("deleted_tasks") as batch:
        batch.drop_column("withdrawn")
    with op.batch_alter_table("round_items") as batch:
        batch.drop_column("withdrawn_at")
