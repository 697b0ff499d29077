"""Drift: the reference each guide version fixes, and alpha spending per check kind.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_references",
        sa.Column("guide_fingerprint", sa.String(32), primary_key=True),
        sa.Column("guide_version", sa.String(64), nullable=False),
        sa.Column("registered_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "drift_spending",
        sa.Column("guide_fingerprint", sa.String(32), primary_key=True),
        sa.Column("check", sa.String(32), primary_key=True),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("horizon", sa.Integer(), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("spent", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("drift_spending")
    op.drop_table("drift_references")
