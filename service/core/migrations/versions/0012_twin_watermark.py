"""Reconciliation remembers up to which task id it looked for twin tasks of one content.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reconcile_state") as batch:
        batch.add_column(
            sa.Column("twins_checked_id", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("reconcile_state") as batch:
        batch.drop_column("twins_checked_id")
